"""``loes export``: a run's fold ensemble as a MONAI bundle."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="write a run's fold ensemble as a MONAI bundle",
        description="Write the finished fold models of RUN_DIR as a MONAI bundle in OUT_DIR: "
        "configs/metadata.json, configs/inference.json (`python -m monai.bundle run "
        "--config_file configs/inference.json --dataset_dir NIFTI_DIR` writes the predictions "
        "and changes between sessions `loes predict` writes), models/ (each fold model, the "
        "ensemble's calibrations of scores and of changes and, where it traces, a TorchScript "
        "of the ensemble) and docs/README.md.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `loes cv`")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export the bundle and say where it is; 0, or :class:`~loes.errors.LoesError`."""
    from loes.pipeline.predict.export import export_bundle

    out = export_bundle(args.run_dir, args.out_dir)
    torchscript = (out / "models" / "model.ts").is_file()
    print(
        f"bundle: {out} ({'with' if torchscript else 'without'} TorchScript; see "
        f"{out / 'docs' / 'README.md'})\n"
        f"run it: python -m monai.bundle run --config_file {out}/configs/inference.json "
        f"--bundle_root {out} --dataset_dir NIFTI_DIR --output_dir OUT"
    )
    return 0
