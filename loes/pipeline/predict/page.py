"""What ``loes predict`` writes: the predictions table as CSV, and a small self-contained HTML
page (one row per scan: a slice of the model's input, the interval drawn on the 0-34 scale
against the threshold, the call and its flags), rendered with Jinja2."""

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
from loes.io import write_text
from loes.pipeline.run.pages import package_template

__all__ = ["render_page", "write_predictions"]


def write_predictions(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the table of :meth:`~loes.pipeline.predict.ensemble.FoldEnsemble.predict` as CSV,
    atomically; returns the path."""
    write_text(path, table.to_csv(index=False))
    return Path(path)


def _thumbnail(slice_: np.ndarray | None) -> str | None:
    """A data: URI of a grey PNG of one (H, W) slice, anterior up; None without a slice."""
    if slice_ is None:
        return None
    buffer = io.BytesIO()
    mpimg.imsave(buffer, np.rot90(np.asarray(slice_, dtype=np.float32)), cmap="gray", format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        loes_version=__version__,
    )
