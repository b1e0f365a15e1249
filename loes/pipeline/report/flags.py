"""Warnings in plain words about the network's predictions, for every report page.

Two things make a network's numbers mislead at a glance:

- **near-constant predictions**: a network that gives (almost) every scan of a fold the same
  score has learned the cohort's average, not the disease. Its MAE can still look fair on a
  skewed cohort where most scans score near 0. Flagged when, in some fold, the SD of its
  predictions is below :data:`NEAR_CONSTANT_SHARE` of the SD of the true scores (pooled over
  every scan of the repeat, population SDs).
- **worse than the trivial baseline**: a pooled MAE above that of :data:`TRIVIAL_BASELINE` (the
  training median predicted for everyone) means the images added nothing.
"""

from __future__ import annotations

import math
from typing import Any

from loes.pipeline.report.numbers import number
from loes.pipeline.run.predictions import NETWORK

__all__ = ["NEAR_CONSTANT_SHARE", "TRIVIAL_BASELINE", "model_flags"]

#: A fold's predictions are near-constant when their SD is below this share of the true scores'.
NEAR_CONSTANT_SHARE = 0.05

#: The baseline a network must beat to have learned anything: the training median.
TRIVIAL_BASELINE = "median"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _fold_label(fold: dict[str, Any], n_repeats: int) -> str:
    if n_repeats > 1:
        return f"repeat {fold['repeat']} fold {fold['fold']}"
    return f"fold {fold['fold']}"


def _near_constant(summary: dict[str, Any], model: str) -> dict[str, Any] | None:
    metrics = summary["metrics"][model]
    spread = metrics["pooled"].get("sd_true")
    if not _finite(spread) or spread <= 0:
        return None
    limit = NEAR_CONSTANT_SHARE * spread
    # one scan has no spread to judge
    folds = [f for f in metrics["folds"] if _finite(f.get("sd_predicted")) and f["n_scans"] >= 2]
    flat = [f for f in folds if f["sd_predicted"] < limit]
    if not flat:
        return None
    names = [_fold_label(f, summary["n_repeats"]) for f in flat]
    sds = ", ".join(number(f["sd_predicted"]) for f in flat)
    scope = "every fold" if len(flat) == len(folds) else ", ".join(names)
    return {
        "kind": "near_constant",
        "model": model,
        "folds": [{"repeat": f["repeat"], "fold": f["fold"]} for f in flat],
        "text": (
            f"The {model} predicts nearly the same score for every scan in {scope}: the SD of "
            f"its predictions ({sds} Loes points) is under {NEAR_CONSTANT_SHARE:.0%} of the SD "
            f"of the true scores ({number(spread)}). It has learned an average, not the disease; "
            "its MAE and correlations there say little."
        ),
    }


def _worse_than_trivial(summary: dict[str, Any], model: str) -> dict[str, Any] | None:
    if TRIVIAL_BASELINE not in summary["metrics"]:
        return None
    mae = summary["metrics"][model]["pooled"]["mae"]
    trivial = summary["metrics"][TRIVIAL_BASELINE]["pooled"]["mae"]
    if not (_finite(mae) and _finite(trivial)) or mae <= trivial:
        return None
    interval = summary.get("differences", {}).get(TRIVIAL_BASELINE, {})
    sure = ""
    if _finite(interval.get("low")) and _finite(interval.get("high")):
        verdict = "excludes" if interval.get("excludes_zero") else "includes"
        sure = (
            f" (difference {number(mae - trivial)}, 95% interval {number(interval['low'])} to "
            f"{number(interval['high'])}, which {verdict} 0)"
        )
    return {
        "kind": "worse_than_trivial",
        "model": model,
        "baseline": TRIVIAL_BASELINE,
        "text": (
            f"The {model}'s pooled MAE ({number(mae)} Loes points) is worse than that of the "
            f"{TRIVIAL_BASELINE} baseline ({number(trivial)}), which predicts the training median "
            f"for everyone: the images have added nothing yet{sure}."
        ),
    }


def model_flags(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The warnings about the network in ``summary``, each with a sentence in plain words.

    ``summary`` is :func:`loes.pipeline.report.summary.summarize`'s dict (``nan`` or ``None`` for
    undefined values). Returns a list of ``{"kind", "model", "text", ...}``: ``kind`` is
    ``"near_constant"`` (with the ``folds`` concerned) or ``"worse_than_trivial"`` (with the
    ``baseline``). Baselines are not flagged: the median baseline is constant by design. An
    empty list when there is nothing to say, or no network.
    """
    if NETWORK not in summary["metrics"]:
        return []
    found = [_near_constant(summary, NETWORK), _worse_than_trivial(summary, NETWORK)]
    return [flag for flag in found if flag is not None]
