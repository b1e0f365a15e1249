"""The ``loes`` command. Each subcommand is a module in this package with ``register``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from loes import __version__
from loes.errors import LoesError

__all__ = ["SETTINGS_HINT", "add_scan_reading", "build_parser", "main", "scan_reading"]

#: the line every command taking key=value settings ends its help with
SETTINGS_HINT = (
    "every key=value setting, with its default, unit and allowed values:\n"
    "  loes settings                  (loes settings training: one section)"
)


def add_scan_reading(parser: argparse.ArgumentParser) -> None:
    """The flags that say how tables among a command's SOURCEs are read (``loes predict``,
    ``loes explain``): ``--images-dir``, ``--suffix``, ``--include-gd``."""
    parser.add_argument(
        "--images-dir",
        help="folder of a manifest's relative paths or of the lab CSV's images",
    )
    parser.add_argument("--suffix", default="T1w", help="BIDS suffix of the images (default: T1w)")
    parser.add_argument(
        "--include-gd", action="store_true", help="keep post-contrast scans of a table"
    )


def scan_reading(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`loes.data.read_scans` that :func:`add_scan_reading`'s
    flags set."""
    return {"images_dir": args.images_dir, "include_gd": args.include_gd, "suffix": args.suffix}


def build_parser() -> argparse.ArgumentParser:
    """The ``loes`` parser with every subcommand module's ``register``ed subparser."""
    parser = argparse.ArgumentParser(
        prog="loes",
        description="Predict the Loes score from 3D brain MRI and cross-validate it honestly.",
    )
    parser.add_argument("--version", action="version", version=f"loes {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module_info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module_info.name}").register(commands)
    for command in (parser, *commands.choices.values()):
        command.allow_abbrev = False  # `--epoch 3` is a typo, not `--epochs 3`
    for command in commands.choices.values():
        command.set_defaults(_parser=command)  # so that `main` reports with its usage
        if any(action.dest == "overrides" for action in command._actions):  # cv, slurm
            command.epilog = f"{command.epilog or ''}\n\n{SETTINGS_HINT}".lstrip()
    return parser


def _show_transform_decisions() -> None:
    """Print on stderr, once, as ``loes``'s notes are, what a transform decided per scan
    (``preprocessing.skull_strip: auto``) and what reading the data set aside."""
    for name in ("loes.transforms", "loes.data"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(_Stderr())
            logger.setLevel(logging.INFO)


class _Stderr(logging.Handler):
    """Each record's message on the ``sys.stderr`` of the moment (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one clear message and exit with status 2.

    Settings (``key=value``) may follow the flags: ``loes cv data.csv --epochs 1
    training.lr=3e-4``. An unknown argument prints the subcommand's usage (``usage: loes cv
    ...``) and exits with status 2 (``SystemExit``), like any argparse error.
    """
    parser = build_parser()
    _show_transform_decisions()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args._argv = argv  # as typed, for a command that starts itself again (loes cv --nproc)
    # argparse takes positionals (key=value settings, SOURCE) in one run between flags; accept
    # them anywhere: the command sorts settings from the source (`loes.cli.cv`)
    if extra and hasattr(args, "overrides") and all(e[:1] != "-" for e in extra):
        args.overrides += extra
    elif extra:
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.run(args) or 0)
    except LoesError as error:
        print(f"loes {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `loes ... | head` read what it wanted: stop quietly, as Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush
        return 141  # 128 + SIGPIPE, what a shell reports for such a writer
    except KeyboardInterrupt:
        print(
            f"loes {args.command}: interrupted; re-run the same command to resume.", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
