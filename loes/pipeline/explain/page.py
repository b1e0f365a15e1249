"""What ``loes explain`` shows: one HTML page beside ``explanations.csv``, the summary per
method against the baselines first, then each scan's figures, prediction, Loes areas and truth
metrics, rendered with Jinja2. The figures are the PNG files beside it (linked, not embedded:
a run's explanations run to hundreds of figures)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import PurePosixPath

import pandas as pd

from loes import __version__
from loes.data.loes_areas import LOES_AREAS
from loes.data.problems import plural
from loes.pipeline.run.pages import package_template

__all__ = ["render_page"]

#: how many of a scan's areas the page lists, largest share first
_TOP_AREAS = 3


def _number(value, digits: int = 2) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _areas(row) -> list[str]:
    """The largest Loes-area shares of the map, each with its ratio to the area's share of the
    brain (1x: no more than its volume), then the rest of the brain."""
    shares = {a: getattr(row, f"area_{a}", None) for a in LOES_AREAS}
    shares = {a: v for a, v in shares.items() if v is not None and not pd.isna(v)}
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:_TOP_AREAS]
    listed = []
    for area, share in top:
        if share > 0:
            volume = getattr(row, f"brain_area_{area}", None)
            ratio = f" ({share / volume:.1f}x)" if volume and not pd.isna(volume) else ""
            listed.append(f"{area.replace('_', ' ')} {share:.0%}{ratio}")
    if shares:
        listed.append(f"elsewhere {row.area_elsewhere:.0%}")
    return listed


def _summary_rows(summary: dict) -> list[dict]:
    rows = []
    for method, entry in summary["methods"].items():
        lesioned = entry.get("map") or {}
        baselines = entry.get("baselines", {})
        zero = entry.get("score_zero")
        rows.append(
            {
                "method": method,
                "scans": entry["scans"],
                "with_lesions": entry["scans_with_lesions"],
                "values": [
                    (
                        name,
                        _number(lesioned.get(key)),
                        _number(baselines.get("random", {}).get(key)),
                        _number(baselines.get("brain_mask", {}).get(key)),
                    )
                    for name, key in (
                        ("relevance mass accuracy", "relevance_mass_accuracy"),
                        ("mass ratio (1: chance)", "mass_ratio"),
                        ("ROC AUC", "auc"),
                        ("pointing game", "pointing"),
                    )
                ],
                "sanity": _number(entry.get("random_weights_rank_correlation")),
                "flat": entry["flat_maps"],
                "zero": None
                if not zero
                else f"{zero['mass']:.3g} on {plural(zero['scans'], 'scan')} scored 0; "
                f"{zero['mass_on_scans_with_lesions']:.3g} on scans with lesions",
            }
        )
    return rows


def render_page(table: pd.DataFrame, summary: dict, names: dict[str, str]) -> str:
    """The page of an explanations table (:func:`loes.pipeline.explain.explain`'s rows) and
    its summary; ``names`` maps each image to its folder under ``scans/``."""
    scans = []
    for row in table.itertuples(index=False):
        figure = PurePosixPath("scans", names.get(row.image, ""), f"{row.method}.png")
        scans.append(
            {
                "scan": " ".join(s for s in (row.subject, row.session) if s) or row.image,
                "image": row.image,
                "fold": row.fold,
                "method": row.method,
                "figure": str(figure),
                "score": "" if pd.isna(row.loes_score) else f"{row.loes_score:g}",
                "predicted": _number(getattr(row, "predicted", None), 1),
                "areas": _areas(row) if not row.error else [],
                "rma": _number(getattr(row, "relevance_mass_accuracy", None)),
                "share": _number(getattr(row, "lesion_share", None)),
                "auc": _number(getattr(row, "auc", None)),
                "pointing": _number(getattr(row, "pointing", None)),
                "sanity": _number(getattr(row, "random_weights_rank_correlation", None)),
                "error": row.error,
            }
        )
    return package_template("loes.pipeline.explain", "explanations.html.j2").render(
        summary=_summary_rows(summary),
        scans=scans,
        maps=plural(len(scans), "map"),
        sanity=bool(summary.get("settings", {}).get("sanity", True)),
        source=summary.get("run", ""),
        provenance=summary.get("provenance") or {},
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        loes_version=__version__,
    )
