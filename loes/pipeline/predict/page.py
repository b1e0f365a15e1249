"""What ``loes predict`` writes: the predictions table as CSV with its sidecar JSON (where the
models come from, the settings, what each column means), and a small self-contained HTML page
(the same provenance and definitions, then one row per scan: a slice of the model's input, the
interval drawn on the 0-34 scale against the threshold, the call and its flags), rendered with
Jinja2."""

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
from loes.data.loes_items import MAX_LOES_SCORE
from loes.io import csv_text, write_json, write_text
from loes.pipeline.predict.table import DETAIL_DECIMALS
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


def render_page(
    table: pd.DataFrame, *, threshold: float, coverage: float, source: str, tta: str
) -> str:
    """The HTML page of a predictions table (see :func:`write_predictions`); thumbnails come
    from ``table.attrs["thumbnails"]`` when present."""
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
                "flags": [f for f in str(row.flags or "").split("; ") if f],
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
        coverage=f"{coverage:.0%}",
        source=source,
        tta=tta,
        n_failed=int((table["error"] != "").sum()),
        provenance=table.attrs.get("provenance") or {},
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        loes_version=__version__,
    )
