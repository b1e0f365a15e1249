"""``loes cv``: subject-grouped k-fold cross-validation with reports; one fold of it
(``--fold``, a cluster job's work); several processes training together (``--nproc``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "cv",
        help="cross-validate a network and its baselines",
        description="Cross-validate a network, grouped by subject, beside a median and a ridge "
        "baseline on the same folds. Without SOURCE it runs on the built-in synthetic cohort. "
        "Re-running the same command resumes: finished folds are skipped. With --fold it "
        "trains and scores that fold alone (a cluster job; `loes report RUN_DIR` gathers the "
        "finished folds); with --nproc N, N processes train each fold together "
        "(DistributedDataParallel under torchrun, one per GPU).",
        epilog="examples:\n  loes cv --config configs/cpu.yaml\n"
        "  loes cv data/manifest.csv --folds 10 --repeats 3 training.lr=3e-4\n"
        "  loes cv --config runs/x/config.yaml --fold 2          # one fold, e.g. a SLURM task\n"
        "  loes cv --config configs/gpu.yaml --nproc 4           # = torchrun --nproc-per-node 4 "
        "-m loes cv ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_arguments(parser)
    parser.add_argument(
        "--fold",
        type=int,
        metavar="K",
        help="train and score only fold K (0-based) of the run's splits.json, then exit",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="R",
        help="the repeat of --fold (0-based; default 0), with cv.repeats > 1",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train each fold with N processes (one per GPU) through torchrun",
    )
    parser.set_defaults(run=run)


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


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` less ``--nproc N`` (or ``--nproc=N``)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            out.append(word)
    return out


def _check_nproc(nproc: int, config) -> None:
    """What can be checked before ``torchrun`` starts ``nproc`` processes."""
    import torch

    from loes.errors import LoesError
    from loes.pipeline.cross_validation.cv import check_config

    if nproc < 1:
        raise LoesError(f"--nproc must be at least 1, got {nproc}.")
    device = check_config(config)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise LoesError(
            f"--nproc {nproc}: PyTorch sees {torch.cuda.device_count()} GPU(s); start at most "
            "one process per GPU."
        )
    if config.training.batch_size < nproc:
        raise LoesError(
            f"--nproc {nproc}: training.batch_size={config.training.batch_size} is smaller; "
            "each process needs at least one scan per step."
        )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from loes.errors import LoesError
    from loes.pipeline import cross_validate, cross_validate_fold, distributed, format_summary

    config = resolve_config(args)
    if args.repeat is not None and args.fold is None:
        raise LoesError("--repeat R needs --fold K: it chooses the repeat of that fold.")
    if args.nproc is not None:
        _check_nproc(args.nproc, config)
        if distributed.launched_by_torchrun():
            if args.nproc != distributed.world_size():
                raise LoesError(
                    f"--nproc {args.nproc} under torchrun, which started "
                    f"{distributed.world_size()} processes; give one of the two."
                )
        elif args.nproc > 1:
            return distributed.launch(args.nproc, _without_nproc(args._argv))
    if args.fold is not None:
        cross_validate_fold(config, args.fold, args.repeat or 0)  # says what it did
        return 0
    report = cross_validate(config)
    if report is not None:  # rank 0 of several processes, or the only one
        Console().print(format_summary(report))
        print(f"report: {config.out}/report.html")
    return 0
