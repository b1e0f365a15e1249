"""``loes cv``: subject-grouped k-fold cross-validation with reports; one fold of it
(``--fold``, a cluster job's work); several processes training together (``--nproc``)."""

from __future__ import annotations

import argparse

from loes.cli._settings import add_settings_arguments, resolve_config


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


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from loes.errors import LoesError
    from loes.pipeline import cross_validate, cross_validate_fold, format_summary
    from loes.pipeline.cluster import distributed
    from loes.pipeline.cross_validation.cv import check_nproc

    config = resolve_config(args)
    if args.repeat is not None and args.fold is None:
        raise LoesError("--repeat R needs --fold K: it chooses the repeat of that fold.")
    if args.nproc is not None:
        check_nproc(config, args.nproc)
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
