"""``loes explain``: where a run's fold models look, checked against lesion masks."""

from __future__ import annotations

import argparse
from pathlib import Path

from loes.cli import add_scan_reading, scan_reading


def _scans(value: str) -> int | None:
    if value == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give a number of scans or 'all', not {value!r}"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"give at least 1 scan, not {number}")
    return number


def _methods(value: str) -> list[str]:
    from loes.pipeline.explain.saliency import SALIENCY_METHODS

    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in SALIENCY_METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(unknown) or value!r}; choose from "
            f"{', '.join(SALIENCY_METHODS)} (several: gradcam,smoothgrad)"
        )
    return names


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "explain",
        help="where the fold models look, checked against lesion masks",
        description="Saliency maps (monai.visualize) of RUN_DIR's fold models: without SOURCE "
        "the run's own scans, each by the fold model that never saw it; with SOURCE new scans, by "
        "the whole fold ensemble. Per scan and method: the map in model space and on the scan's "
        "own grid (NIfTI), a PNG through its peak, its share in each Loes area and, where the "
        "scan has a lesion mask (a lesion_mask column), how well it points at the lesions beside "
        "a random map, the brain mask and the same network with randomised weights. Writes "
        "explanations.csv, summary.json and index.html into --out.",
        epilog="examples:\n  loes explain runs/synthetic-cpu\n"
        "  loes explain runs/synthetic-cpu --method gradcam,smoothgrad --scans all\n"
        "  loes explain runs/synthetic-cpu new/manifest.csv --out new-explanations",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="the --out folder of `loes cv` (or, with SOURCE, a `loes export` bundle)",
    )
    parser.add_argument(
        "sources",
        metavar="SOURCE",
        nargs="*",
        help="new scans: NIfTI, MGH or .hdr/.img files, DICOM series folders, folders of them, "
        "a manifest (with lesion_mask), the lab's "
        "CSV or a BIDS root (default: the run's own scans, out of fold)",
    )
    parser.add_argument(
        "--method",
        type=_methods,
        default=["vanillagrad"],
        help="gradcam, gradcampp, vanillagrad, smoothgrad or occlusion; several comma-separated "
        "(default: vanillagrad, the one that points at the synthetic lesions)",
    )
    parser.add_argument(
        "--scans",
        type=_scans,
        default=8,
        help="how many scans, or all: the run's own spread evenly over the scores, of SOURCE the "
        "first (default: 8)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: RUN_DIR/explanations, or ./explanations with SOURCE)",
    )
    parser.add_argument(
        "--layer",
        help="the layer GradCAM weights (default: the network's last 3D convolution)",
    )
    parser.add_argument(
        "--occlusion-size", type=int, default=16, help="occluded cube's edge, voxels (default: 16)"
    )
    parser.add_argument(
        "--occlusion-stride",
        type=int,
        default=8,
        help="voxels between occluded cubes (default: 8)",
    )
    parser.add_argument(
        "--occlusion-batch",
        type=int,
        default=16,
        help="occluded copies per forward pass (default: 16)",
    )
    parser.add_argument(
        "--smoothgrad-samples",
        type=int,
        default=25,
        help="noisy copies SmoothGrad averages (default: 25)",
    )
    parser.add_argument(
        "--no-sanity",
        dest="sanity",
        action="store_false",
        help="skip the maps with randomised weights (half the time)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    add_scan_reading(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Explain, write the outputs, print the summary per method; 0, or
    :class:`~loes.errors.LoesError` (exit status 2) when a scan could not be explained."""
    from loes.pipeline.explain.console import print_summary, raise_for_failures
    from loes.pipeline.explain.explanations import explain
    from loes.pipeline.explain.saliency import SaliencySettings

    settings = SaliencySettings(
        layer=args.layer,
        smoothgrad_samples=args.smoothgrad_samples,
        occlusion_size=args.occlusion_size,
        occlusion_stride=args.occlusion_stride,
        occlusion_batch=args.occlusion_batch,
    )
    table = explain(
        args.run_dir,
        args.sources or None,
        methods=args.method,
        scans=args.scans,
        out=args.out,
        settings=settings,
        sanity=args.sanity,
        device=args.device,
        progress=True,
        **scan_reading(args),
    )
    print_summary(table)
    raise_for_failures(table)
    return 0
