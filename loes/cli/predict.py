"""``loes predict``: score new scans with a run's fold ensemble, with intervals and flags."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from loes.cli import add_scan_reading, scan_reading


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="score new scans with a run's fold ensemble",
        description="Predict the Loes score of each scan with every finished fold model of "
        "RUN_DIR (left-right flip test-time augmentation), with a conformal prediction interval "
        "calibrated on the run's out-of-fold residuals, the threshold call and flags for scans "
        "unlike the training scans. Writes a CSV and an HTML page; with scores in SOURCE, also "
        "prints the metrics against them. A scan that cannot be scored is its own row with the "
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
        help="NIfTI files, folders of them, a manifest, the lab's CSV or a BIDS root",
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


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    """Predict, write ``args.out`` and the page beside it, print a summary; 0, or
    :class:`~loes.errors.LoesError` (exit status 2) when a scan could not be scored."""
    from loes.data.problems import plural
    from loes.data.scan_sources import read_scans
    from loes.errors import LoesError
    from loes.io import write_text
    from loes.pipeline.predict.members import load_ensemble, warn_if_partial
    from loes.pipeline.predict.page import render_page, write_predictions
    from loes.pipeline.run.metrics import regression_metrics, threshold_metrics

    if not 0 < args.coverage < 1:
        raise LoesError(f"--coverage must be between 0 and 1 (0.9 for 90%), got {args.coverage}.")
    if args.batch_size is not None and args.batch_size < 1:
        raise LoesError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.workers < 0:
        raise LoesError(f"--workers must be 0 or more, got {args.workers}.")
    if args.out.is_dir():
        raise LoesError(f"--out {args.out} is a folder; give the CSV file to write.")
    if args.out.suffix.lower() != ".csv":
        raise LoesError(
            f"--out {args.out}: give a .csv file; the page is written beside it as .html."
        )
    out = args.out.resolve()
    if out.is_relative_to(Path(args.run_dir).resolve()):
        raise LoesError(
            f"--out {args.out} is inside the run folder {args.run_dir}, whose files loes keeps; "
            "write the predictions elsewhere."
        )
    if any(out == Path(source).resolve() for source in args.sources):
        raise LoesError(f"--out {args.out} is one of the scans' sources; it would be overwritten.")
    ensemble = load_ensemble(args.run_dir)
    warn_if_partial(args.run_dir, ensemble, "predicting")
    scans = read_scans(args.sources, **scan_reading(args))
    table = ensemble.predict(
        scans,
        tta=args.tta,
        coverage=args.coverage,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=True,
    )
    write_predictions(table, args.out)
    page = args.out.with_suffix(".html")
    write_text(
        page,
        render_page(
            table,
            threshold=ensemble.threshold,
            coverage=args.coverage,
            source=str(args.run_dir),
            tta=args.tta,
        ),
    )

    scored = table[table["error"] == ""]
    for row in scored.itertuples(index=False):
        name = " ".join(s for s in (row.subject, row.session) if s)
        sure = "" if row.call_sure else f" (interval crosses {ensemble.threshold:g})"
        flagged = " [flagged]" if row.flags else ""
        print(
            f"{name}: {row.predicted:.1f} ({args.coverage:.0%} interval {row.lower:.1f}-"
            f"{row.upper:.1f}), {row.call}{sure}{flagged}"
        )
    known = scored[scored["loes_score"].notna()]
    if len(known):
        m = regression_metrics(known["loes_score"], known["predicted"])
        t = threshold_metrics(known["loes_score"], known["predicted"], ensemble.threshold)
        inside = (known["loes_score"] >= known["lower"]) & (known["loes_score"] <= known["upper"])
        print(
            f"against the {plural(len(known), 'given score')}: MAE {_fmt(m['mae'])}, RMSE "
            f"{_fmt(m['rmse'])}, Pearson r {_fmt(m['pearson_r'])}, Lin's CCC "
            f"{_fmt(m['lin_ccc'])}; at >= {ensemble.threshold:g}: sensitivity "
            f"{_fmt(t['sensitivity'])}, specificity {_fmt(t['specificity'])}; "
            f"{inside.mean():.0%} inside their {args.coverage:.0%} interval"
        )
    flagged = int((scored["flags"] != "").sum())
    if flagged:
        print(f"{plural(flagged, 'scan')} flagged: see the flags column of {args.out}")
    print(f"predictions: {args.out}; page: {page}")
    failed = table[table["error"] != ""]
    if len(failed):
        shown = "; ".join(f"{r.image}: {r.error}" for r in failed.head(3).itertuples())
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise LoesError(
            f"{plural(len(failed), 'scan')} of {len(table)} could not be scored ({shown}{more}); "
            f"their rows in {args.out} say why."
        )
    return 0
