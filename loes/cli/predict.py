"""``loes predict``: score new scans with a run's fold ensemble, with intervals and flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from loes.cli import add_scan_reading, scan_reading


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="score new scans with a run's fold ensemble",
        description="Predict the Loes score of each scan with every finished fold model of "
        "RUN_DIR (left-right flip test-time augmentation), with a conformal prediction interval "
        "calibrated on the run's out-of-fold residuals, the threshold call and flags (scans "
        "unlike the training scans, upside down or back to front, trained on, and the run's own "
        "warnings); a flagged call is never sure. When SOURCE holds several sessions of a subject "
        "(subject and session from the table or sub-/ses- in BIDS file names; ordered by an "
        "age column when every session has one, else by session id), the change between each "
        "two consecutive sessions with a conformal interval calibrated on the run's "
        "out-of-fold consecutive pairs and a call (progressed: the whole interval at or above "
        "+0.5; no progression: below +0.5; else cannot tell), flagged when the two sessions "
        "come from different sites or protocols, goes to changes.csv beside the CSV "
        "(NAME_changes.csv beside NAME.csv). Writes a CSV, its provenance (.json) and an "
        "HTML page; with scores in SOURCE, also prints the metrics against them (scans the run "
        "trained on apart). A scan that cannot be scored is its own row with the "
        "reason, and the exit status is 2.",
        epilog="examples:\n  loes predict runs/synthetic-cpu scan1.nii.gz scan2.nii.gz\n"
        "  loes predict runs/synthetic-cpu data/new/manifest.csv --out new.csv --coverage 0.8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="the --out folder of `loes cv`, or a `loes export` bundle",
    )
    parser.add_argument(
        "sources",
        metavar="SOURCE",
        nargs="+",
        help="NIfTI, MGH or .hdr/.img files, DICOM series folders, folders of them, a manifest, "
        "the lab's CSV or a BIDS root",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("predictions.csv"),
        help="the CSV to write (default: predictions.csv); the HTML page goes beside it",
    )
    parser.add_argument(
        "--tta", choices=["flip", "none"], default="flip", help="test-time augmentation"
    )
    parser.add_argument(
        "--coverage",
        type=float,
        default=0.9,
        help="share of true scores the interval should hold (default: 0.9)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="scans per forward pass (default: the run's)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="preprocessing worker processes (default: 0)"
    )
    add_scan_reading(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """:func:`loes.pipeline.predict.scoring.predict_scans` with the command's arguments; 0, or
    :class:`~loes.errors.LoesError` (exit status 2) when a scan could not be scored."""
    from loes.pipeline.predict.scoring import predict_scans

    predict_scans(
        args.run_dir,
        args.sources,
        args.out,
        tta=args.tta,
        coverage=args.coverage,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        reading=scan_reading(args),
    )
    return 0
