"""What ``loes predict`` does: every scan of the sources scored by a run's fold ensemble, the CSV
and its page written, a line per scan and the metrics against given scores printed; with
several sessions of a subject, the changes between them (``changes.csv``) too."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from loes.data.problems import plural
from loes.data.scan_sources import read_scans
from loes.errors import LoesError
from loes.io import check_writable, write_text
from loes.pipeline.predict.changes import change_metrics, changes_path, write_changes
from loes.pipeline.predict.members import load_ensemble, warn_if_partial
from loes.pipeline.predict.page import render_page, why_unsure, write_predictions
from loes.pipeline.run.metrics import regression_metrics, threshold_metrics

__all__ = ["predict_scans"]


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _check_out(out: Path, run_dir: Path, sources: Sequence[str | os.PathLike]) -> None:
    """Refuse an ``out`` that is a folder, not a ``.csv``, inside the run folder or a source."""
    if out.is_dir():
        raise LoesError(f"--out {out} is a folder; give the CSV file to write.")
    if out.suffix.lower() != ".csv":
        raise LoesError(f"--out {out}: give a .csv file; the page is written beside it as .html.")
    resolved = out.resolve()
    if resolved.is_relative_to(run_dir.resolve()):
        raise LoesError(
            f"--out {out} is inside the run folder {run_dir}, whose files loes keeps; "
            "write the predictions elsewhere."
        )
    for written in (out, changes_path(out)):
        if any(written.resolve() == Path(source).resolve() for source in sources):
            raise LoesError(
                f"--out {out}: {written} is one of the scans' sources; it would be overwritten."
            )
    check_writable(out.parent, "choose another place with --out")


def _print_summary(table: pd.DataFrame, threshold: float, coverage: float, out: Path) -> None:
    """One line per scored scan, then the metrics against the given scores (scans the run
    trained on apart) and the flags."""
    provenance = table.attrs.get("provenance") or {}
    if provenance:
        print(f"models: {provenance['models']}, {provenance['trained']}")
    for warning in (provenance.get("run") or {}).get("warnings", []):
        print(f"warning: the run's own report: {warning}; every prediction says so")
    scored = table[table["error"] == ""]
    for row in scored.itertuples(index=False):
        name = " ".join(s for s in (row.subject, row.session) if s)
        unsure = why_unsure(bool(row.flags), row.lower, row.upper, threshold)
        print(
            f"{name}: {row.predicted:.1f} ({coverage:.0%} interval {row.lower:.1f}-"
            f"{row.upper:.1f}), {row.call}{f' ({unsure})' if unsure else ''}"
        )
    known = scored[scored["loes_score"].notna()]
    seen = known["flags"].str.contains("in-sample:", regex=False)
    if seen.any():
        print(
            f"{plural(int(seen.sum()), 'scan')} with a given score the run trained on (in-sample:"
            " no test of the model) left out of the metrics below"
        )
    _print_metrics(known[~seen], threshold, coverage)
    flagged = int((scored["flags"] != "").sum())
    if flagged:
        print(f"{plural(flagged, 'scan')} flagged: see the flags column of {out}")


def _print_metrics(known: pd.DataFrame, threshold: float, coverage: float) -> None:
    """The metrics of the predictions against the given scores."""
    if not len(known):
        return
    m = regression_metrics(known["loes_score"], known["predicted"])
    t = threshold_metrics(known["loes_score"], known["predicted"], threshold)
    inside = (known["loes_score"] >= known["lower"]) & (known["loes_score"] <= known["upper"])
    print(
        f"against the {plural(len(known), 'given score')}: MAE {_fmt(m['mae'])}, RMSE "
        f"{_fmt(m['rmse'])}, Pearson r {_fmt(m['pearson_r'])}, Lin's CCC "
        f"{_fmt(m['lin_ccc'])}; at >= {threshold:g}: sensitivity "
        f"{_fmt(t['sensitivity'])}, specificity {_fmt(t['specificity'])}; "
        f"{inside.mean():.0%} inside their {coverage:.0%} interval"
    )


def _print_changes(changes: pd.DataFrame, coverage: float, path: Path) -> None:
    """One line per change between consecutive sessions, the calls counted, and the
    intervals against the given changes."""
    for why in changes.attrs.get("left_out", []):
        print(f"changes: left out {why}")
    if changes.empty:
        print(
            f"changes: none (no subject has two sessions the run could score); {path} holds no row"
        )
        return
    for row in changes.itertuples(index=False):
        years = (
            ""
            if pd.isna(row.years)
            else f", {row.years:g} " + ("year" if row.years == 1 else "years")
        )
        unsure = " (not sure: flagged)" if row.flags and row.call != "cannot tell" else ""
        unsure += f"; flags: {row.flags}" if row.flags else ""
        print(
            f"{row.subject} {row.from_session} -> {row.to_session}{years}: "
            f"{row.predicted_change:+.1f} ({coverage:.0%} interval {row.change_low:+.1f} to "
            f"{row.change_high:+.1f}), {row.call}{unsure}"
        )
    counts = changes["call"].value_counts()
    calls = ", ".join(f"{counts.get(c, 0)} {c}" for c in ("progressed", "no progression"))
    print(
        f"changes: {plural(len(changes), 'pair')} of consecutive sessions of "
        f"{plural(changes['subject'].nunique(), 'subject')} (ordered by "
        f"{changes.attrs.get('order', 'session id')}): {calls}, "
        f"{counts.get('cannot tell', 0)} cannot tell; "
        f"{int((changes['flags'] != '').sum())} flagged"
    )
    seen = changes["flags"].str.contains("in-sample:", regex=False)
    if seen.any():
        print(
            f"{plural(int(seen.sum()), 'change')} with a scan the run trained on (in-sample: no "
            "test of the model) left out of the change metrics"
        )
    m = change_metrics(changes[~seen])
    if m["n"]:
        print(
            f"against the {plural(m['n'], 'given change')}: change MAE {_fmt(m['mae'])} (no "
            f"change: {_fmt(m['no_change_mae'])}); {m['coverage']:.0%} inside their "
            f"{coverage:.0%} interval (mean width {_fmt(m['mean_width'])} points); "
            f"{plural(m['wrong_calls'], 'call')} the given change contradicts"
        )


def predict_scans(
    run_dir: str | os.PathLike,
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike = "predictions.csv",
    *,
    tta: str = "flip",
    coverage: float = 0.9,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int = 0,
    reading: dict | None = None,
) -> pd.DataFrame:
    """Score every scan of ``sources`` with the fold ensemble of ``run_dir`` (a ``loes cv`` run
    folder or a ``loes export`` bundle), write the table to ``out`` (CSV) and the page beside it
    (``.html``), print one line per scan and, for scans with a given score, the metrics; the
    changes between consecutive sessions of each subject go to :func:`changes_path` (``out``
    ``predictions.csv``: ``changes.csv``; a subject with one session gives no row).

    ``reading`` holds the options of :func:`loes.data.read_scans` (``images_dir``, ``suffix``,
    ``include_gd``); the other arguments are :meth:`FoldEnsemble.predict`'s. Returns the table
    (see there: scores in Loes points).

    Raises:
        LoesError: for a bad argument or ``out``, an unreadable run or source, and, after both
            files are written, when a scan could not be scored (its row says why).
    """
    out, run_dir = Path(out), Path(run_dir)
    if not 0 < coverage < 1:
        raise LoesError(f"--coverage must be between 0 and 1 (0.9 for 90%), got {coverage}.")
    if batch_size is not None and batch_size < 1:
        raise LoesError(f"--batch-size must be at least 1, got {batch_size}.")
    if workers < 0:
        raise LoesError(f"--workers must be 0 or more, got {workers}.")
    _check_out(out, run_dir, sources)
    ensemble = load_ensemble(run_dir)
    warn_if_partial(run_dir, ensemble, "predicting")
    scans = read_scans(sources, **(reading or {}))
    table = ensemble.predict(
        scans,
        tta=tta,
        coverage=coverage,
        device=device,
        batch_size=batch_size,
        workers=workers,
        progress=True,
    )
    changes = ensemble.changes(table, coverage)
    write_predictions(table, out)
    written = write_changes(changes, changes_path(out))
    page = out.with_suffix(".html")
    write_text(
        page,
        render_page(
            table,
            threshold=ensemble.threshold,
            coverage=coverage,
            source=str(run_dir),
            tta=tta,
            changes=changes,
        ),
    )
    _print_summary(table, ensemble.threshold, coverage, out)
    _print_changes(changes, coverage, written)
    print(
        f"predictions: {out} (provenance: {out.with_suffix('.json')}); changes: {written}; "
        f"page: {page}"
    )
    failed = table[table["error"] != ""]
    if len(failed):
        shown = "; ".join(f"{r.image}: {r.error}" for r in failed.head(3).itertuples())
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise LoesError(
            f"{plural(len(failed), 'scan')} of {len(table)} could not be scored ({shown}{more}); "
            f"their rows in {out} say why."
        )
    return table
