"""``loes validate``: check a dataset before training and list every problem at once."""

from __future__ import annotations

import argparse

from loes.data import FORMATS, validate_dataset
from loes.data.validation import DEFAULT_PIXDIM
from loes.errors import LoesError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a dataset (table and images) before training",
        description="Check a manifest, the reference lab's CSV or a BIDS dataset (columns, "
        "scores, duplicates), or scans as `loes predict` takes them (a scan, a folder of "
        "them), and every image (readable NIfTI, 3D, plausible voxel sizes and "
        "shape, not truncated). Prints every problem with where it is and how to fix it; "
        "exits with status 2 on errors, 0 when there are only warnings.",
    )
    parser.add_argument(
        "source", help="manifest CSV/TSV, the lab's CSV, a BIDS folder, a scan or a folder of scans"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="input format (default: detected)"
    )
    parser.add_argument(
        "--images-dir",
        default=None,
        metavar="DIR",
        help="folder of the images: the lab's {subject}_{session}_space-MNI_brain_mprage_RAVEL"
        ".nii.gz files, or the base of a manifest's relative paths",
    )
    parser.add_argument(
        "--include-gd", action="store_true", help="keep post-contrast (gadolinium) scans"
    )
    parser.add_argument("--suffix", default="T1w", help="BIDS image suffix (default: T1w)")
    parser.add_argument(
        "--deep", action="store_true", help="read every voxel (NaN/inf, empty, corrupt data)"
    )
    parser.add_argument(
        "--pixdim",
        nargs="+",
        type=float,
        default=None,
        metavar="MM",
        help="voxel size in mm the scans will be resampled to, one or three values "
        "(preprocessing.pixdim; default: 2.0): a scan whose field of view no head fits is an "
        "error that says the size it would become",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="one line per problem (by default a problem met at many places is shown once)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pixdim = args.pixdim or DEFAULT_PIXDIM
    if len(pixdim) not in (1, 3) or not all(0 < v < float("inf") for v in pixdim):
        raise LoesError(
            f"--pixdim takes one or three positive voxel sizes in mm, got {args.pixdim}."
        )
    report = validate_dataset(
        args.source,
        deep=args.deep,
        format=args.format,
        images_dir=args.images_dir,
        include_gd=args.include_gd,
        suffix=args.suffix,
        pixdim=pixdim[0] if len(pixdim) == 1 else pixdim,
    )
    print(report.text(verbose=args.verbose))
    if not report.ok:
        n = len(report.errors)
        raise LoesError(f"{n} error{'' if n == 1 else 's'} in {args.source}.")
    return 0
