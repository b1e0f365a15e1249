"""``loes report``: rewrite a cross-validation run's report files and print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="rewrite a cross-validation run's report and print its summary",
        description="Collect the out-of-fold predictions and training histories of every fold in "
        "RUN_DIR (fold_K/ or repeat_R/fold_K/), rewrite predictions.csv, report.json, report.md "
        "and report.html there, and print the summary table.",
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", type=Path, help="the --out folder of `loes cv`"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="transplant threshold in Loes points (default: the run's report.threshold, 9); "
        "re-reports the run without changing its config.yaml",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Rewrite the report of ``args.run_dir`` and print its summary; 0 on success.

    ``args.threshold`` (Loes points), when given, replaces the run's ``report.threshold``. A
    missing run folder, one without predictions, with an unreadable fold file or a bad threshold
    raises :class:`~loes.errors.LoesError` (printed as one line by :func:`loes.cli.main`, exit 2).
    """
    from rich.console import Console

    from loes.pipeline.report import format_summary, write_report

    run_dir: Path = args.run_dir
    report = write_report(run_dir, threshold=args.threshold)
    console = Console()
    console.print(format_summary(report))
    console.print(f"Report written to {run_dir / 'report.html'} (open it in a browser).")
    return 0
