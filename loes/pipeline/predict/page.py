"""What ``loes predict`` writes: the predictions table as CSV with its sidecar JSON (where the
models come from, the settings, what each column means), and a small self-contained HTML page
(the same provenance and definitions, then one row per scan: a slice of the model's input, the
interval drawn on the 0-34 scale against the threshold, the call and its flags; then, for each
subject with several sessions, its trajectory of predicted scores with their intervals over age
or session order, and the changes between consecutive sessions), rendered with Jinja2."""

from __future__ import annotations

import base64
import io
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import image as mpimg

from loes import __version__
from loes.data.follow_up import has_ages, in_time_order
from loes.data.loes_items import MAX_LOES_SCORE
from loes.io import csv_text, write_json, write_text
from loes.pipeline.predict.table import DETAIL_DECIMALS, split_flags
from loes.pipeline.run.pages import package_template

__all__ = ["render_page", "why_unsure", "write_predictions"]


def write_predictions(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the table of :meth:`~loes.pipeline.predict.ensemble.FoldEnsemble.predict` as CSV
    (the spread and the members' scores to ``DETAIL_DECIMALS`` decimals) and, beside it, its
    provenance (``table.attrs["provenance"]``) as the sidecar JSON of the same name
    (``predictions.csv`` -> ``predictions.json``), each atomically; returns the CSV's path."""
    path = Path(path)
    if "provenance" in table.attrs:
        write_json(path.with_suffix(".json"), table.attrs["provenance"])
    rows = pd.DataFrame(table, copy=True)
    rows.attrs = {}  # thumbnails and provenance are not rows
    detail = [c for c in rows if c == "spread" or c.startswith("member_")]
    write_text(path, csv_text(rows.round(dict.fromkeys(detail, DETAIL_DECIMALS))))
    return path


def _thumbnail(slice_: np.ndarray | None) -> str | None:
    """A data: URI of a grey PNG of one (H, W) slice, anterior up; None without a slice."""
    if slice_ is None:
        return None
    buffer = io.BytesIO()
    mpimg.imsave(buffer, np.rot90(np.asarray(slice_, dtype=np.float32)), cmap="gray", format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def why_unsure(flagged: bool, lower: float, upper: float, threshold: float) -> str:
    """Why a call is not sure, in words ("" when it is): flagged, or its interval includes the
    threshold (values as rounded in the table)."""
    if flagged:
        return "not sure: flagged"
    if lower < threshold <= upper:
        return f"not sure: the interval includes {threshold:g}"
    return ""


def _why_unsure(row, threshold: float) -> str:
    return "" if row.call_sure else why_unsure(bool(row.flags), row.lower, row.upper, threshold)


def _percent(value: float) -> float:
    return float(np.clip(value, 0, MAX_LOES_SCORE) / MAX_LOES_SCORE * 100)


#: the trajectory plot: width and height of the SVG, and its margins, in pixels
_PLOT = {"width": 320, "height": 150, "left": 30, "right": 12, "top": 10, "bottom": 24}


def _trajectory(series: pd.DataFrame, threshold: float) -> dict:
    """The SVG geometry of one subject's predicted scores with their intervals (and the given
    scores) over age, or over session order when an age is missing; ``series`` is the
    subject's scored rows."""
    by_age = has_ages(series)
    series = in_time_order(series)
    xs = series["age"].astype(float).to_numpy() if by_age else np.arange(len(series), dtype=float)
    values = series[["lower", "upper", "predicted"]].to_numpy(dtype=float)
    given = series["loes_score"].to_numpy(dtype=float)
    low = float(np.nanmin(np.r_[values.ravel(), given]))
    high = float(np.nanmax(np.r_[values.ravel(), given]))
    low, high = max(0.0, np.floor(low - 1)), min(MAX_LOES_SCORE, np.ceil(high + 1))
    if high - low < 6:  # at least 6 points tall, so that a 0.5-point step stays small
        high = min(MAX_LOES_SCORE, low + 6)
        low = max(0.0, high - 6)
    p = _PLOT
    span_x = (xs.max() - xs.min()) or 1.0
    inner_w = p["width"] - p["left"] - p["right"]
    inner_h = p["height"] - p["top"] - p["bottom"]

    def x(value: float) -> float:
        if len(xs) == 1 or xs.max() == xs.min():
            return p["left"] + inner_w / 2
        return p["left"] + (value - xs.min()) / span_x * inner_w

    def y(value: float) -> float:
        return p["top"] + (high - value) / (high - low) * inner_h

    points = [
        {
            "x": x(position),
            "y": y(row.predicted),
            "y_low": y(row.lower),
            "y_high": y(row.upper),
            "y_true": None if pd.isna(row.loes_score) else y(row.loes_score),
            "label": f"{row.session}: {row.predicted:.1f} ({row.lower:.1f}-{row.upper:.1f})"
            + ("" if pd.isna(row.loes_score) else f", given {row.loes_score:g}")
            + (f", age {row.age:g}" if by_age else ""),
        }
        for position, row in zip(xs, series.itertuples(index=False), strict=True)
    ]
    ticks = [(xs[0], series["session"].iloc[0]), (xs[-1], series["session"].iloc[-1])]
    return {
        **p,
        "points": points,
        "line": " ".join(f"{pt['x']:.1f},{pt['y']:.1f}" for pt in points),
        "y_top": f"{high:g}",
        "y_bottom": f"{low:g}",
        "y_threshold": y(threshold) if low <= threshold <= high else None,
        "x_axis": "age (years)" if by_age else "session order",
        "x_ticks": [
            {"x": x(value), "text": f"{value:g}" if by_age else str(session)}
            for value, session in (ticks if len(xs) > 1 else ticks[:1])
        ],
    }


def _change_sections(
    table: pd.DataFrame, changes: pd.DataFrame | None, threshold: float
) -> list[dict]:
    """One section per subject with changes: its trajectory and its change rows."""
    if changes is None or changes.empty:
        return []
    scored = table[table["error"] == ""]
    sections = []
    for subject, rows in changes.groupby("subject", sort=False):
        series = scored[scored["subject"].astype(str) == str(subject)]
        sections.append(
            {
                "subject": subject,
                "plot": _trajectory(series, threshold),
                "rows": [
                    {
                        "pair": f"{r.from_session} -> {r.to_session}",
                        "years": "" if pd.isna(r.years) else f"{r.years:g}",
                        "given": "" if pd.isna(r.given_change) else f"{r.given_change:+.1f}",
                        "predicted": f"{r.predicted_change:+.1f}",
                        "interval": f"{r.change_low:+.1f} to {r.change_high:+.1f}",
                        "call": r.call,
                        "sure": bool(r.call_sure),
                        "why_unsure": "not sure: flagged"
                        if r.flags and r.call != "cannot tell"
                        else "",
                        "flags": split_flags(r.flags),
                    }
                    for r in rows.itertuples(index=False)
                ],
            }
        )
    return sections


def render_page(
    table: pd.DataFrame,
    *,
    threshold: float,
    coverage: float,
    source: str,
    tta: str,
    changes: pd.DataFrame | None = None,
) -> str:
    """The HTML page of a predictions table (see :func:`write_predictions`); thumbnails come
    from ``table.attrs["thumbnails"]`` when present. With ``changes`` (the table of
    :meth:`FoldEnsemble.changes <loes.pipeline.predict.ensemble.FoldEnsemble.changes>`), each
    subject that has changes gets its trajectory (predicted scores with their intervals, the
    given scores, over age or session order) and its change rows."""
    thumbnails = table.attrs.get("thumbnails", {})
    rows = []
    for position, row in enumerate(table.itertuples(index=False)):
        scored = not row.error
        rows.append(
            {
                "scan": " ".join(s for s in (row.subject, row.session) if s),
                "image": row.image,
                "thumbnail": _thumbnail(thumbnails.get(position)),
                "score": None if pd.isna(row.loes_score) else f"{row.loes_score:g}",
                "predicted": f"{row.predicted:.1f}" if scored else "",
                "interval": f"{row.lower:.1f}-{row.upper:.1f}" if scored else "",
                "spread": "" if not scored or pd.isna(row.spread) else f"{row.spread:.2f}",
                "call": row.call if scored else "",
                "sure": bool(row.call_sure) if scored else False,
                "why_unsure": _why_unsure(row, threshold) if scored else "",
                "flags": split_flags(row.flags),
                "error": row.error,
                "x_low": _percent(row.lower) if scored else 0,
                "x_high": _percent(row.upper) if scored else 0,
                "x_pred": _percent(row.predicted) if scored else 0,
                "x_true": None if pd.isna(row.loes_score) else _percent(row.loes_score),
            }
        )
    return package_template("loes.pipeline.predict", "predictions.html.j2").render(
        rows=rows,
        threshold=f"{threshold:g}",
        x_threshold=_percent(threshold),
        changes=_change_sections(table, changes, threshold),
        change_provenance=(changes.attrs.get("provenance") or {}) if changes is not None else {},
        coverage=f"{coverage:.0%}",
        source=source,
        tta=tta,
        n_failed=int((table["error"] != "").sum()),
        provenance=table.attrs.get("provenance") or {},
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        loes_version=__version__,
    )
