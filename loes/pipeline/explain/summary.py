"""What ``summary.json`` holds of ``explanations.csv``: per method, and per method and fold, the
flat maps, the mean truth metrics of the maps beside the baselines', the randomised-weights rank
correlation, the mean Loes-area shares beside the brain's, and the mass on scans scored 0."""

from __future__ import annotations

import pandas as pd

from loes.pipeline.explain.checks import TRUTH_METRICS
from loes.pipeline.explain.maps import AREA_NAMES

__all__ = ["summarize_explanations"]

_BASELINES = ("random", "brain_mask")


def _mean(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _metrics(rows: pd.DataFrame) -> dict:
    lesioned = rows[rows["lesion_share"].notna()] if "lesion_share" in rows else rows.iloc[:0]
    result: dict = {
        "scans": len(rows),
        "scans_with_lesions": len(lesioned),
        "flat_maps": int(rows["flat"].astype(bool).sum()),
        "flat_maps_with_lesions": int(lesioned["flat"].astype(bool).sum()),
    }
    if len(lesioned):
        result["map"] = {k: _mean(lesioned[k]) for k in TRUTH_METRICS}
        result["baselines"] = {
            b: {k: _mean(lesioned[f"{b}_{k}"]) for k in TRUTH_METRICS if k != "lesion_share"}
            for b in _BASELINES
            if f"{b}_auc" in lesioned
        }
    if "random_weights_rank_correlation" in rows:
        result["random_weights_rank_correlation"] = _mean(rows["random_weights_rank_correlation"])
    if rows[[f"area_{a}" for a in AREA_NAMES]].notna().any().any():
        result["areas"] = {
            a: {"map": _mean(rows[f"area_{a}"]), "brain": _mean(rows[f"brain_area_{a}"])}
            for a in AREA_NAMES
        }
    healthy = rows[rows["loes_score"] == 0]
    if len(healthy) and len(lesioned):
        result["score_zero"] = {
            "scans": len(healthy),
            "mass": _mean(healthy["mass"]),
            "mass_on_scans_with_lesions": _mean(lesioned["mass"]),
        }
    return result


def summarize_explanations(table: pd.DataFrame) -> dict:
    """Per method, over the explained scans (errors left out), and per method and fold: how
    many maps are flat (one value everywhere, 0 included: a GradCAM whose ReLU zeroed it; they
    score chance), the mean truth metrics of the maps and of the baselines on the same scans
    with lesions, the mean rank
    correlation with randomised weights, the mean area shares of the maps beside the areas'
    shares of the brain (chance) and, for scans scored 0, the
    map's mass beside its mass on scans with lesions."""
    done = table[table["error"] == ""] if "error" in table else table
    summary: dict = {"methods": {}}
    for method, rows in done.groupby("method", sort=False):
        entry = _metrics(rows)
        entry["by_fold"] = {str(f): _metrics(r) for f, r in rows.groupby("fold", sort=True)}
        summary["methods"][method] = entry
    return summary
