"""``loes report``: rewrite a cross-validation run's report files and print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from loes.errors import LoesError


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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from loes.pipeline.report import format_summary, write_report

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise LoesError(f"Run folder {run_dir} does not exist; pass the --out folder of `loes cv`.")
    report = write_report(run_dir)
    console = Console()
    console.print(format_summary(report))
    console.print(f"Report written to {run_dir / 'report.html'} (open it in a browser).")
    return 0
