"""The settings arguments that ``loes cv`` and ``loes slurm`` share: SOURCE, ``--config``, the
shortcut flags and ``key=value`` settings, read into one configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_settings_arguments", "resolve_config"]


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """SOURCE, ``--config``, the shortcut flags of :data:`_FLAGS` and ``key=value`` settings,
    which ``loes cv`` and ``loes slurm`` share (read them with :func:`resolve_config`)."""
    parser.add_argument("source", nargs="?", help="manifest CSV/TSV, lab CSV or BIDS root")
    parser.add_argument("--config", help="YAML configuration (see configs/)")
    parser.add_argument("--folds", type=int, help="number of folds (cv.folds)")
    parser.add_argument("--repeats", type=int, help="repeated k-fold (cv.repeats)")
    parser.add_argument("--model", help="registered network name (model.name)")
    parser.add_argument("--epochs", type=int, help="training epochs (training.epochs)")
    parser.add_argument("--out", help="run folder (out)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="device (device)")
    parser.add_argument("--format", choices=["manifest", "lab", "bids"], help="input format")
    parser.add_argument(
        "--images-dir",
        help="folder that a manifest's relative image paths, or the lab CSV's image names, "
        "are read from (data.images_dir)",
    )
    parser.add_argument("--suffix", help="BIDS suffix of the images, e.g. FLAIR (data.suffix)")
    parser.add_argument(
        "--include-gd",
        action="store_const",
        const=True,
        help="keep post-contrast sessions (data.include_gd)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="any setting")


_FLAGS = {
    "source": "data.source",
    "folds": "cv.folds",
    "repeats": "cv.repeats",
    "model": "model.name",
    "epochs": "training.epochs",
    "out": "out",
    "device": "device",
    "format": "data.format",
    "images_dir": "data.images_dir",
    "suffix": "data.suffix",
    "include_gd": "data.include_gd",
}


def resolve_config(args: argparse.Namespace):
    """The configuration of ``args``: ``--config`` file, then ``key=value`` settings and the
    flags of :data:`_FLAGS`; ``SOURCE`` and the settings may stand in either order.

    Raises:
        LoesError: for more than one SOURCE or a bad setting.
    """
    from loes.errors import LoesError
    from loes.pipeline import load_config

    # argparse fills `source` with the first positional, so settings and SOURCE may come in
    # either order: a key=value that is not an existing path is a setting, the rest the source
    words = [args.source, *args.overrides] if args.source else args.overrides
    args.overrides = [w for w in words if "=" in w and not Path(w).exists()]
    sources = [w for w in words if w not in args.overrides]
    if len(sources) > 1:
        raise LoesError(f"one SOURCE at most, got {len(sources)}: {' '.join(sources)}.")
    args.source = sources[0] if sources else None
    flags = {key: getattr(args, flag) for flag, key in _FLAGS.items()}
    values = {key: value for key, value in flags.items() if value is not None}
    return load_config(args.config, args.overrides, values)
