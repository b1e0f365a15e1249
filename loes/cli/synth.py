"""``loes synth``: write the synthetic ALD cohort (images, lesion masks, manifest, preview)."""

from __future__ import annotations

import argparse
import time


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        help="write the synthetic ALD cohort",
        description="Write a synthetic cerebral ALD cohort with its own ground truth as a BIDS "
        "dataset (native-like NIfTI scans and sidecars, scores in sub-*/sub-*_sessions.tsv, "
        "lesion label maps under derivatives/), with manifest.csv listing the same scans and "
        "preview.png. Re-running with the same options resumes an interrupted run.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the cohort into")
    parser.add_argument("--subjects", type=int, default=66, help="number of subjects (default: 66)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--contrast", default="t1w", help="t1w, t2w or flair (default: t1w)")
    parser.add_argument(
        "--resolution",
        type=float,
        default=1.0,
        help="typical voxel size in mm; native voxels vary 0.8-1.3x around it (default: 1.0)",
    )
    parser.add_argument(
        "--whole-head",
        action="store_true",
        help="whole heads instead of skull-stripped brains: skull, scalp, eyes, neck and a "
        "noisy background around the same brain, each scan's brain mask under "
        "derivatives/brainmask/ (manifest column brain_mask); about 3.5x slower",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from loes.data.synthetic import generate_cohort

    start = time.perf_counter()
    manifest = generate_cohort(
        args.out_dir,
        subjects=args.subjects,
        seed=args.seed,
        contrast=args.contrast,
        resolution=args.resolution,
        workers=args.workers,
        progress=not args.no_progress,
        whole_head=args.whole_head,
    )
    print(f"wrote {manifest} in {time.perf_counter() - start:.0f} s")
    return 0
