"""Metrics of a Loes-score regression: agreement, the transplant threshold and fold summaries.

Every function takes true and predicted scores and returns plain Python numbers (``float`` or
``int``), so the result goes straight into JSON. A metric that is undefined for the data at hand
(a correlation with a constant input, a sensitivity without positive scans) is ``nan``: never an
exception, never a warning.

Conventions, stated once:

- ``standardized_rmse`` is RMSE divided by the *population* standard deviation (``ddof=0``) of
  the true scores of the same set of scans, so predicting the set's own mean scores exactly 1.
  This matches the earlier lab's headline ("RMSE / SD"); lower is better, above 1 is worse than
  predicting the mean.
- ``lin_ccc`` is Lin's concordance correlation coefficient with population moments: 1 only when
  predictions equal the truth, lowered by any bias or scale error that Pearson's r ignores.
- The transplant threshold (Loes 9 or more, :data:`TRANSPLANT_THRESHOLD`) makes a scan positive;
  a prediction at or above the same threshold calls it positive. ROC AUC ranks scans by the
  predicted score itself.
- Score ranges (:data:`SCORE_RANGES`) bin scans by their *true* score.
- Fold SDs are sample SDs (``ddof=1``) over folds; pooled metrics are computed over every scan of
  a repeat and then averaged over repeats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from loes.errors import LoesError

__all__ = [
    "NETWORK",
    "PREDICTION_COLUMNS",
    "REGRESSION_METRICS",
    "SCORE_RANGES",
    "THRESHOLD_METRICS",
    "TRANSPLANT_THRESHOLD",
    "bland_altman",
    "lin_ccc",
    "mae_by_range",
    "model_order",
    "regression_metrics",
    "summarize",
    "threshold_metrics",
]

#: Loes score at or above which haematopoietic stem-cell transplant is usually considered.
TRANSPLANT_THRESHOLD = 9.0

#: The model name of the trained network in a predictions table; every other name is a baseline.
NETWORK = "network"

#: Columns of the long out-of-fold predictions table that :func:`summarize` reads.
PREDICTION_COLUMNS = ("repeat", "fold", "subject", "session", "loes_score", "predicted", "model")

#: Metrics returned by :func:`regression_metrics` besides ``n``.
REGRESSION_METRICS = (
    "mae",
    "rmse",
    "standardized_rmse",
    "r2",
    "pearson_r",
    "spearman_rho",
    "lin_ccc",
)

#: Metrics returned by :func:`threshold_metrics` besides the counts and the threshold itself.
THRESHOLD_METRICS = ("sensitivity", "specificity", "roc_auc")

#: True-score ranges as ``(label, low, high)``: a scan belongs where ``low < score <= high``.
#: Scores come in steps of 0.5, so "0.5-4" holds 0.5 to 4 and "4.5-9" holds 4.5 to 9.
SCORE_RANGES: tuple[tuple[str, float, float], ...] = (
    ("0", -math.inf, 0.0),
    ("0.5-4", 0.0, 4.0),
    ("4.5-9", 4.0, 9.0),
    (">9", 9.0, math.inf),
)

NAN = float("nan")


def _arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true, dtype=float).ravel()
    pred = np.asarray(y_pred, dtype=float).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} values but y_pred has {pred.size}.")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise ValueError("y_true and y_pred must be finite; drop missing predictions first.")
    return true, pred


def _is_constant(values: np.ndarray) -> bool:
    return values.size < 2 or bool(np.ptp(values) == 0)


def lin_ccc(y_true: Any, y_pred: Any) -> float:
    """Lin's concordance correlation coefficient (population moments); ``nan`` if undefined.

    Examples::

        >>> lin_ccc([0, 2, 4], [0, 2, 4])
        1.0
        >>> round(lin_ccc([0, 2, 4], [1, 3, 5]), 4)  # same r, but biased by one point
        0.8421
    """
    true, pred = _arrays(y_true, y_pred)
    if true.size == 0:
        return NAN
    covariance = np.mean((true - true.mean()) * (pred - pred.mean()))
    denominator = true.var() + pred.var() + (true.mean() - pred.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else NAN


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Agreement between true and predicted Loes scores.

    Returns ``n`` (int) and the floats ``mae``, ``rmse``, ``standardized_rmse`` (RMSE / population
    SD of the true scores), ``r2``, ``pearson_r``, ``spearman_rho`` and ``lin_ccc``; ``nan`` where
    a metric is undefined (no scans; a constant truth for ``standardized_rmse``, ``r2`` and the
    correlations; a constant prediction for the correlations).

    Examples::

        >>> m = regression_metrics([0, 3, 10], [1, 3, 8])
        >>> m["n"], m["mae"]
        (3, 1.0)
    """
    true, pred = _arrays(y_true, y_pred)
    result: dict[str, Any] = {"n": int(true.size), **dict.fromkeys(REGRESSION_METRICS, NAN)}
    if true.size == 0:
        return result
    rmse = math.sqrt(mean_squared_error(true, pred))
    result["mae"] = float(mean_absolute_error(true, pred))
    result["rmse"] = float(rmse)
    result["lin_ccc"] = lin_ccc(true, pred)
    if _is_constant(true):
        return result
    result["standardized_rmse"] = float(rmse / true.std(ddof=0))
    result["r2"] = float(r2_score(true, pred))
    if not _is_constant(pred):
        result["pearson_r"] = float(stats.pearsonr(true, pred).statistic)
        result["spearman_rho"] = float(stats.spearmanr(true, pred).statistic)
    return result


def threshold_metrics(
    y_true: Any, y_pred: Any, threshold: float = TRANSPLANT_THRESHOLD
) -> dict[str, Any]:
    """The transplant threshold as a classification: true and predicted score ``>= threshold``.

    Returns ``threshold``, ``n_positive`` and ``n_negative`` (true classes), ``sensitivity``,
    ``specificity`` and ``roc_auc`` (the predicted score ranks the scans); ``nan`` where a class
    is missing.

    Examples::

        >>> m = threshold_metrics([2, 5, 9, 12], [3, 10, 8, 11])
        >>> m["sensitivity"], m["specificity"], m["roc_auc"]
        (0.5, 0.5, 0.75)
    """
    true, pred = _arrays(y_true, y_pred)
    positive = true >= threshold
    called = pred >= threshold
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    both_classes = n_positive > 0 and n_negative > 0
    return {
        "threshold": float(threshold),
        "n_positive": n_positive,
        "n_negative": n_negative,
        "sensitivity": float(called[positive].mean()) if n_positive else NAN,
        "specificity": float((~called[~positive]).mean()) if n_negative else NAN,
        "roc_auc": float(roc_auc_score(positive, pred)) if both_classes else NAN,
    }


def bland_altman(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Bland-Altman agreement of prediction minus truth: ``bias`` and 95% limits of agreement.

    ``sd_difference`` is the sample SD (``ddof=1``) of the differences; the limits are
    ``bias ± 1.96 * sd_difference``.

    Examples::

        >>> bland_altman([0, 2, 4], [1, 3, 5])["bias"]
        1.0
    """
    true, pred = _arrays(y_true, y_pred)
    difference = pred - true
    bias = float(difference.mean()) if difference.size else NAN
    sd = float(difference.std(ddof=1)) if difference.size > 1 else NAN
    return {
        "bias": bias,
        "sd_difference": sd,
        "loa_lower": bias - 1.96 * sd,
        "loa_upper": bias + 1.96 * sd,
    }


def mae_by_range(
    y_true: Any, y_pred: Any, bins: Sequence[tuple[str, float, float]] = SCORE_RANGES
) -> dict[str, dict[str, Any]]:
    """MAE within each range of the true score: ``{label: {"n": int, "mae": float}}``.

    Examples::

        >>> mae_by_range([0, 0, 3, 12], [1, 0, 2, 10])["0"]
        {'n': 2, 'mae': 0.5}
    """
    true, pred = _arrays(y_true, y_pred)
    result = {}
    for label, low, high in bins:
        inside = (true > low) & (true <= high)
        error = np.abs(pred[inside] - true[inside])
        result[label] = {"n": int(inside.sum()), "mae": float(error.mean()) if error.size else NAN}
    return result


# --------------------------------------------------------------------------- summaries


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


def _check_table(predictions: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise LoesError(
            f"The predictions table lacks the column(s) {', '.join(missing)}; it needs "
            f"{', '.join(PREDICTION_COLUMNS)} (one row per scan per model per repeat)."
        )
    table = predictions.loc[:, list(PREDICTION_COLUMNS)].copy()
    table = table.dropna(subset=["predicted"])
    if table.empty:
        raise LoesError("The predictions table has no predictions to summarize.")
    if table["loes_score"].isna().any():
        raise LoesError("The predictions table has rows without a true loes_score.")
    table["model"] = table["model"].astype(str)
    table["subject"] = table["subject"].astype(str)
    table["session"] = table["session"].astype(str)
    table["repeat"] = table["repeat"].astype(int)
    table["fold"] = table["fold"].astype(int)
    duplicated = table.duplicated(["model", "repeat", "subject", "session"], keep=False)
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise LoesError(
            f"Scan {first['subject']}/{first['session']} has several predictions from model "
            f"{first['model']!r} in repeat {first['repeat']}; each scan must be predicted once "
            "per model per repeat (out of fold)."
        )
    return table


def model_order(models: Sequence[str]) -> list[str]:
    """The network first, then the baselines in alphabetical order."""
    unique = sorted(set(models))
    return [NETWORK, *[m for m in unique if m != NETWORK]] if NETWORK in unique else unique


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
                "mae_by_range": mae_by_range(true, pred),
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


def summarize(predictions: pd.DataFrame, threshold: float = TRANSPLANT_THRESHOLD) -> dict[str, Any]:
    """Everything the cross-validation report says, from the long out-of-fold predictions.

    ``predictions`` has the columns :data:`PREDICTION_COLUMNS`, one row per scan per model per
    repeat; model ``"network"`` is the trained network, every other model a baseline. Returns::

        {"n_scans", "n_subjects", "n_repeats", "n_folds", "threshold", "models",
         "score_ranges",
         "metrics": {model: {"n_folds", "folds": [per-fold dict], "fold_mean", "fold_sd",
                             "pooled", "pooled_by_repeat", "bland_altman", "mae_by_range",
                             "threshold"}},
         "ratios": {baseline: {"pooled_mae_ratio", "fold_mean", "fold_sd", "folds"}}}

    A per-fold dict holds ``repeat``, ``fold``, ``n_scans``, ``n_subjects``, the
    :func:`regression_metrics` and the :func:`threshold_metrics`. ``pooled`` holds the same over
    every scan of a repeat, averaged over repeats (``pooled_by_repeat`` keeps each repeat).
    Ratios are the network's MAE over the baseline's (below 1: the network is better).
    Undefined values are ``nan``.
    """
    table = _check_table(predictions)
    models = model_order(table["model"].unique())
    metrics = {m: _summarize_model(table[table["model"] == m], threshold) for m in models}
    return {
        "n_scans": int(table[["subject", "session"]].drop_duplicates().shape[0]),
        "n_subjects": int(table["subject"].nunique()),
        "n_repeats": int(table["repeat"].nunique()),
        "n_folds": int(table.groupby("repeat")["fold"].nunique().max()),
        "threshold": float(threshold),
        "models": models,
        "score_ranges": [label for label, _, _ in SCORE_RANGES],
        "metrics": metrics,
        "ratios": _ratios(metrics),
    }
