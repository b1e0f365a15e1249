"""The cross-validation summary: every model's metrics per fold, pooled over scans and averaged
over repeats, with subject-bootstrap intervals and the network beside each baseline.

Fold SDs are sample SDs (``ddof=1``) over folds; pooled metrics are computed over every scan of
a repeat and then averaged over repeats. Intervals come from :mod:`loes.pipeline.report.bootstrap`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loes.pipeline.report.bootstrap import BOOTSTRAP_SEED, N_RESAMPLES, bootstrap_intervals
from loes.pipeline.run.metrics import (
    REGRESSION_METRICS,
    THRESHOLD_METRICS,
    TRANSPLANT_THRESHOLD,
    bland_altman,
    mae_by_range,
    regression_metrics,
    score_ranges,
    threshold_metrics,
)
from loes.pipeline.run.predictions import NETWORK, check_predictions, model_order

__all__ = ["summarize"]

NAN = float("nan")


def _nan_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else NAN


def _nan_sd(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else NAN


def _mean_count(values: Sequence[float]) -> float | int:
    mean = float(np.mean(values))
    return int(mean) if mean.is_integer() else mean


def _scan_metrics(rows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    true, pred = rows["loes_score"].to_numpy(float), rows["predicted"].to_numpy(float)
    regression = regression_metrics(true, pred)
    del regression["n"]
    return {
        "n_scans": len(rows),
        "n_subjects": int(rows["subject"].nunique()),
        **regression,
        **threshold_metrics(true, pred, threshold),
        "sd_true": float(true.std(ddof=0)),
        "sd_predicted": float(pred.std(ddof=0)),
    }


def _average(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Average metric dicts (one per repeat) key by key; counts stay ints when they agree."""
    result: dict[str, Any] = {}
    for key, value in dicts[0].items():
        values = [d[key] for d in dicts]
        if isinstance(value, dict):
            result[key] = _average(values)
        elif isinstance(value, int):
            result[key] = _mean_count(values)
        else:
            result[key] = _nan_mean(values)
    return result


def _summarize_model(rows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    folds = []
    for (repeat, fold), fold_rows in rows.groupby(["repeat", "fold"], sort=True):
        folds.append(
            {"repeat": int(repeat), "fold": int(fold), **_scan_metrics(fold_rows, threshold)}
        )
    metric_names = [*REGRESSION_METRICS, *THRESHOLD_METRICS]
    by_repeat = []
    for repeat, repeat_rows in rows.groupby("repeat", sort=True):
        true = repeat_rows["loes_score"].to_numpy(float)
        pred = repeat_rows["predicted"].to_numpy(float)
        by_repeat.append(
            {
                "repeat": int(repeat),
                **_scan_metrics(repeat_rows, threshold),
                "bland_altman": bland_altman(true, pred),
                "mae_by_range": mae_by_range(true, pred, score_ranges(threshold)),
            }
        )
    pooled = _average([{k: v for k, v in r.items() if k != "repeat"} for r in by_repeat])
    return {
        "n_folds": len(folds),
        "folds": folds,
        "fold_mean": {m: _nan_mean([f[m] for f in folds]) for m in metric_names},
        "fold_sd": {m: _nan_sd([f[m] for f in folds]) for m in metric_names},
        "pooled": {k: v for k, v in pooled.items() if k not in ("bland_altman", "mae_by_range")},
        "pooled_by_repeat": by_repeat,
        "bland_altman": pooled["bland_altman"],
        "mae_by_range": pooled["mae_by_range"],
        "threshold": {
            k: pooled[k] for k in ("threshold", "n_positive", "n_negative", *THRESHOLD_METRICS)
        },
    }


def _ratios(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if NETWORK not in metrics:
        return {}
    network = metrics[NETWORK]
    network_folds = {(f["repeat"], f["fold"]): f["mae"] for f in network["folds"]}
    ratios = {}
    for name, baseline in metrics.items():
        if name == NETWORK:
            continue
        folds = []
        for f in baseline["folds"]:
            key = (f["repeat"], f["fold"])
            if key in network_folds:
                folds.append(
                    {
                        "repeat": key[0],
                        "fold": key[1],
                        "mae_ratio": _ratio(network_folds[key], f["mae"]),
                    }
                )
        values = [f["mae_ratio"] for f in folds]
        ratios[name] = {
            "pooled_mae_ratio": _ratio(network["pooled"]["mae"], baseline["pooled"]["mae"]),
            "fold_mean": _nan_mean(values),
            "fold_sd": _nan_sd(values),
            "folds": folds,
        }
    return ratios


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else NAN


def summarize(
    predictions: pd.DataFrame,
    threshold: float = TRANSPLANT_THRESHOLD,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Everything the cross-validation report says, from the long out-of-fold predictions.

    ``predictions`` has the columns :data:`PREDICTION_COLUMNS`, one row per scan per model per
    repeat; model ``"network"`` is the trained network, every other model a baseline.
    ``threshold`` is the transplant threshold in Loes points (a positive multiple of 0.5);
    ``n_resamples`` and ``seed`` drive the subject bootstrap (:func:`bootstrap_intervals`;
    0 resamples leaves every interval ``nan``). Returns::

        {"n_scans", "n_subjects", "n_repeats", "n_folds", "threshold", "models",
         "score_ranges", "score_range_bounds", "bootstrap",
         "metrics": {model: {"n_folds", "folds": [per-fold dict], "fold_mean", "fold_sd",
                             "pooled", "pooled_ci", "pooled_by_repeat", "bland_altman",
                             "mae_by_range", "threshold"}},
         "ratios": {baseline: {"pooled_mae_ratio", "fold_mean", "fold_sd", "folds"}},
         "differences": {baseline: {"mae_difference", "low", "high", "excludes_zero"}}}

    A per-fold dict holds ``repeat``, ``fold``, ``n_scans``, ``n_subjects``, the
    :func:`regression_metrics`, the :func:`threshold_metrics` and the population SDs
    ``sd_true`` and ``sd_predicted`` (Loes points). ``pooled`` holds the same over every scan of
    a repeat, averaged over repeats (``pooled_by_repeat`` keeps each repeat); ``pooled_ci`` the
    subject-bootstrap interval ``{"low", "high"}`` of each of :data:`INTERVAL_METRICS`.
    ``score_ranges`` are the labels of :func:`score_ranges` and ``score_range_bounds`` maps each
    to ``[low, high)`` (infinite bounds as ``nan``). Ratios are the network's MAE over the
    baseline's (below 1: the network is better); differences the network's MAE minus the
    baseline's (below 0: the network is better) with their paired interval. Undefined values are
    ``nan``.

    Raises :class:`LoesError` for a table without predictions, with missing columns or with a
    scan predicted twice by one model in one repeat; ``ValueError`` for a bad ``threshold``.
    """
    ranges = score_ranges(threshold)
    table = check_predictions(predictions)
    models = model_order(table["model"].unique())
    metrics = {m: _summarize_model(table[table["model"] == m], threshold) for m in models}
    intervals = bootstrap_intervals(table, threshold, n_resamples=n_resamples, seed=seed)
    for model in models:
        metrics[model]["pooled_ci"] = intervals["intervals"][model]
    differences = {
        baseline: {"mae_difference": _difference(metrics, baseline), **interval}
        for baseline, interval in intervals["differences"].items()
    }
    return {
        "n_scans": int(table[["subject", "session"]].drop_duplicates().shape[0]),
        "n_subjects": int(table["subject"].nunique()),
        "n_repeats": int(table["repeat"].nunique()),
        "n_folds": int(table.groupby("repeat")["fold"].nunique().max()),
        "threshold": float(threshold),
        "models": models,
        "score_ranges": [label for label, _, _ in ranges],
        "score_range_bounds": {
            label: [_finite_or_nan(low), _finite_or_nan(high)] for label, low, high in ranges
        },
        "bootstrap": intervals["bootstrap"],
        "metrics": metrics,
        "ratios": _ratios(metrics),
        "differences": differences,
    }


def _finite_or_nan(value: float) -> float:
    return float(value) if math.isfinite(value) else NAN


def _difference(metrics: dict[str, dict[str, Any]], baseline: str) -> float:
    return float(metrics[NETWORK]["pooled"]["mae"] - metrics[baseline]["pooled"]["mae"])
