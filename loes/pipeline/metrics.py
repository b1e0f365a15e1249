"""Metrics of a Loes-score regression: agreement, the transplant threshold and fold summaries.

Every metric function takes true and predicted scores and returns plain Python numbers
(``float`` or ``int``), so the result goes straight into JSON; :func:`summarize` and
:func:`bootstrap_intervals` take the long out-of-fold predictions table. A metric that is
undefined for the data at hand (a correlation with a constant input, a sensitivity without
positive scans) is ``nan``: never an exception, never a warning.

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
- Score ranges (:func:`score_ranges`) bin scans by their *true* score, ``low <= score < high``,
  and end at the threshold: a scan at the threshold is in the top range *and* positive.
- Fold SDs are sample SDs (``ddof=1``) over folds; pooled metrics are computed over every scan of
  a repeat and then averaged over repeats.
- Confidence intervals (:func:`bootstrap_intervals`) resample *subjects*, not scans: the sessions
  of one boy share his anatomy and his disease course, so they are not independent draws. This
  is the cluster bootstrap (Field & Welsh 2007, J R Stat Soc B 69:369-390): draw subjects with
  replacement, keep all their scans, recompute the metric. Intervals are percentile intervals of
  :data:`N_RESAMPLES` resamples drawn by :func:`scipy.stats.bootstrap` with a fixed seed, so the
  same predictions always give the same intervals.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from loes.errors import LoesError

__all__ = [
    "BOOTSTRAP_SEED",
    "CONFIDENCE_LEVEL",
    "INTERVAL_METRICS",
    "NETWORK",
    "N_RESAMPLES",
    "PREDICTION_COLUMNS",
    "REGRESSION_METRICS",
    "SCORE_RANGES",
    "THRESHOLD_METRICS",
    "TRANSPLANT_THRESHOLD",
    "bland_altman",
    "bootstrap_intervals",
    "lin_ccc",
    "mae_by_range",
    "model_order",
    "regression_metrics",
    "score_ranges",
    "summarize",
    "threshold_metrics",
]

#: Loes score at or above which haematopoietic stem-cell transplant is usually considered (Peters
#: et al. 2004, Blood 104:881-888; Miller et al. 2011, Blood 118:1971-1978 used 10). The report
#: takes its threshold from the ``report.threshold`` setting; this is its default.
TRANSPLANT_THRESHOLD = 9.0

#: Loes scores come in steps of half a point (an item scores 0, 0.5 or 1).
SCORE_STEP = 0.5

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

#: Metrics that :func:`bootstrap_intervals` gives a confidence interval: those computed from sums
#: over scans (Spearman's rho and ROC AUC rank the scans and would cost a sort per resample).
INTERVAL_METRICS = (
    "mae",
    "rmse",
    "standardized_rmse",
    "pearson_r",
    "lin_ccc",
    "sensitivity",
    "specificity",
)

#: Bootstrap resamples per interval: enough for stable 2.5th and 97.5th percentiles (Efron &
#: Tibshirani 1993 suggest 1000 or more for percentile intervals); all of them take milliseconds.
N_RESAMPLES = 2000

#: Seed of the bootstrap, so a report is reproducible to the last digit.
BOOTSTRAP_SEED = 0

#: Coverage of every interval in the report.
CONFIDENCE_LEVEL = 0.95

#: Resamples in which a metric is undefined (no positive scan drawn, say) are left out of its
#: interval; when more than this share of them are, the interval is undefined (``nan``).
MAX_UNDEFINED_SHARE = 0.05


def score_ranges(threshold: float = TRANSPLANT_THRESHOLD) -> tuple[tuple[str, float, float], ...]:
    """True-score ranges ``(label, low, high)`` that end at the transplant ``threshold``.

    A scan belongs to a range when ``low <= score < high``. The ranges are 0, from 0.5 to below
    half the threshold, from there to below the threshold, and the threshold or more, so the top
    range holds exactly the scans that :func:`threshold_metrics` counts positive. Labels name
    the scores each range holds (scores come in steps of :data:`SCORE_STEP`).

    Raises ``ValueError`` if ``threshold`` is not a positive multiple of 0.5 (Loes points).

    Examples::

        >>> [label for label, _, _ in score_ranges(9)]
        ['0', '0.5-4', '4.5-8.5', '>=9']
        >>> [label for label, _, _ in score_ranges(10)]
        ['0', '0.5-4.5', '5-9.5', '>=10']
    """
    steps = threshold / SCORE_STEP
    if not (math.isfinite(steps) and steps >= 1 and steps == round(steps)):
        raise ValueError(
            f"threshold must be a positive multiple of 0.5 Loes points, not {threshold}"
        )
    middle = math.floor(threshold / 2 / SCORE_STEP) * SCORE_STEP
    edges = sorted({SCORE_STEP, middle, float(threshold)} - {0.0})
    ranges = [("0", -math.inf, edges[0])]
    for low, high in itertools.pairwise(edges):
        top = high - SCORE_STEP
        ranges.append((f"{low:g}" if top == low else f"{low:g}-{top:g}", low, high))
    ranges.append((f">={threshold:g}", float(threshold), math.inf))
    return tuple(ranges)


#: :func:`score_ranges` at the default threshold: 0, 0.5-4, 4.5-8.5 and 9 or more.
SCORE_RANGES = score_ranges(TRANSPLANT_THRESHOLD)

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

    ``bins`` are ``(label, low, high)`` with ``low <= score < high`` (see :func:`score_ranges`);
    an empty range has ``n`` 0 and ``mae`` nan.

    Examples::

        >>> mae_by_range([0, 0, 3, 12], [1, 0, 2, 10])["0"]
        {'n': 2, 'mae': 0.5}
    """
    true, pred = _arrays(y_true, y_pred)
    result = {}
    for label, low, high in bins:
        inside = (true >= low) & (true < high)
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
    table = _check_table(predictions)
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


# --------------------------------------------------------------------------- intervals

#: Per-cluster sums, in order, from which every interval metric is computed: scans, |error|,
#: error^2, true, predicted, true^2, predicted^2, true*predicted, positives, positives called,
#: negatives, negatives not called.
_SUMS = ("n", "abs", "sq", "t", "p", "tt", "pp", "tp", "pos", "pos_called", "neg", "neg_clear")


def _cluster_sums(
    table: pd.DataFrame, models: list[str], threshold: float, cluster: str
) -> tuple[np.ndarray, int]:
    """``(sums, n_clusters)``: ``sums[c, r, m, k]`` adds up :data:`_SUMS` item ``k`` over the scans
    of cluster ``c`` (a subject, or a scan) that model ``m`` predicted in repeat ``r``."""
    if cluster not in ("subject", "scan"):
        raise ValueError(f"cluster must be 'subject' or 'scan', not {cluster!r}")
    keys = ["subject"] if cluster == "subject" else ["subject", "session"]
    # sorted ids, so the same scans give the same clusters (and intervals) in any row order
    cluster_index, clusters = pd.MultiIndex.from_frame(table[keys]).factorize(sort=True)
    true, pred = table["loes_score"].to_numpy(float), table["predicted"].to_numpy(float)
    positive, called = true >= threshold, pred >= threshold
    items = np.stack(
        [
            np.ones_like(true),
            np.abs(pred - true),
            (pred - true) ** 2,
            true,
            pred,
            true**2,
            pred**2,
            true * pred,
            positive,
            positive & called,
            ~positive,
            ~positive & ~called,
        ],
        axis=1,
    )
    repeats, repeat_index = np.unique(table["repeat"].to_numpy(int), return_inverse=True)
    model_index = pd.Index(models).get_indexer(table["model"])
    sums = np.zeros((len(clusters), len(repeats), len(models), len(_SUMS)))
    np.add.at(sums, (cluster_index, repeat_index, model_index), items)
    return sums, len(clusters)


def _ratio_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.nan)


def _metrics_from_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Each of :data:`INTERVAL_METRICS` from summed :data:`_SUMS` (last axis), as
    :func:`regression_metrics` and :func:`threshold_metrics` define them."""
    s = dict(zip(_SUMS, np.moveaxis(sums, -1, 0), strict=True))
    n = s["n"]
    mean_t, mean_p = _ratio_or_nan(s["t"], n), _ratio_or_nan(s["p"], n)
    var_t = np.maximum(_ratio_or_nan(s["tt"], n) - mean_t**2, 0.0)
    var_p = np.maximum(_ratio_or_nan(s["pp"], n) - mean_p**2, 0.0)
    covariance = _ratio_or_nan(s["tp"], n) - mean_t * mean_p
    # moments from sums leave ~1e-15 of rounding where regression_metrics sees an exact constant
    tiny = 1e-10 * (1.0 + mean_t**2 + mean_p**2)
    var_t, var_p = np.where(var_t > tiny, var_t, 0.0), np.where(var_p > tiny, var_p, 0.0)
    rmse = np.sqrt(_ratio_or_nan(s["sq"], n))
    return {
        "mae": _ratio_or_nan(s["abs"], n),
        "rmse": rmse,
        "standardized_rmse": _ratio_or_nan(rmse, np.sqrt(var_t)),
        "pearson_r": _ratio_or_nan(covariance, np.sqrt(var_t * var_p)),
        "lin_ccc": _ratio_or_nan(2 * covariance, var_t + var_p + (mean_t - mean_p) ** 2),
        "sensitivity": _ratio_or_nan(s["pos_called"], s["pos"]),
        "specificity": _ratio_or_nan(s["neg_clear"], s["neg"]),
    }


def _mean_over_repeats(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring nan (as pooled metrics average repeats); nan if all are."""
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return _ratio_or_nan(total, count)


def _percentile_interval(distribution: np.ndarray, confidence_level: float) -> tuple[float, float]:
    defined = distribution[np.isfinite(distribution)]
    if defined.size == 0 or defined.size < (1 - MAX_UNDEFINED_SHARE) * distribution.size:
        return NAN, NAN
    tail = 100 * (1 - confidence_level) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_intervals(
    predictions: pd.DataFrame,
    threshold: float = TRANSPLANT_THRESHOLD,
    *,
    cluster: str = "subject",
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence_level: float = CONFIDENCE_LEVEL,
) -> dict[str, Any]:
    """Percentile bootstrap intervals of the pooled metrics, resampling subjects.

    ``predictions`` is the long table of :func:`summarize` (Loes points). Each resample draws
    as many subjects as there are, with replacement, and keeps every scan of each drawn subject
    (every repeat, every model): a cluster bootstrap (Field & Welsh 2007, J R Stat Soc B
    69:369-390; Davison & Hinkley 1997, section 3.8), because the scans of one subject are not
    independent. ``cluster="scan"`` resamples scans instead, as if they were independent: it
    understates the uncertainty when a subject has several scans, and is there to show by how
    much. :func:`scipy.stats.bootstrap` draws the resamples (seeded with ``seed``); each metric
    is computed from per-subject sums, so all ``n_resamples`` take milliseconds. With repeats, a
    resample's metric is averaged over repeats, as the pooled point estimate is.

    Returns::

        {"intervals": {model: {metric: {"low", "high"}}},      # each of INTERVAL_METRICS
         "differences": {baseline: {"low", "high", "excludes_zero"}},
         "bootstrap": {"n_resamples", "seed", "confidence_level", "cluster", "method"}}

    ``differences`` is the network's MAE minus each baseline's, both computed on the *same*
    resampled subjects (a paired bootstrap), so a difference whose interval excludes 0 says the
    network is better (below 0) or worse (above 0) beyond what the choice of subjects explains.
    An interval is ``nan`` when there are fewer than 2 subjects, ``n_resamples`` is 0, or the
    metric is undefined in more than :data:`MAX_UNDEFINED_SHARE` of the resamples.

    Raises :class:`LoesError` for a malformed table (see :func:`summarize`) and ``ValueError``
    for an unknown ``cluster``.

    Examples::

        >>> intervals = bootstrap_intervals(table)  # doctest: +SKIP
        >>> intervals["differences"]["median"]  # doctest: +SKIP
        {'low': -1.61, 'high': -0.8, 'excludes_zero': True}
    """
    table = _check_table(predictions)
    models = model_order(table["model"].unique())
    baselines = [m for m in models if m != NETWORK] if NETWORK in models else []
    sums, n_clusters = _cluster_sums(table, models, threshold, cluster)

    def statistic(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        # drawn: (..., n_clusters) indices of the drawn clusters -> (outputs, ...)
        flat = np.asarray(drawn).reshape(-1, n_clusters)
        rows = np.arange(flat.shape[0])[:, None]
        counts = np.zeros(flat.shape)
        np.add.at(counts, (rows, flat), 1.0)
        resampled = np.einsum("bc,crmk->brmk", counts, sums)
        values = {
            k: _mean_over_repeats(v, axis=1) for k, v in _metrics_from_sums(resampled).items()
        }
        outputs = [values[k][:, m] for m in range(len(models)) for k in INTERVAL_METRICS]
        outputs += [
            values["mae"][:, models.index(NETWORK)] - values["mae"][:, models.index(b)]
            for b in baselines
        ]
        return np.stack(outputs).reshape(len(outputs), *np.shape(drawn)[:-1])

    n_outputs = len(models) * len(INTERVAL_METRICS) + len(baselines)
    if n_clusters < 2 or n_resamples < 1:
        bounds = [(NAN, NAN)] * n_outputs
    else:
        with warnings.catch_warnings():  # an undefined resample is handled below, not warned
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(
                (np.arange(n_clusters),),
                statistic,
                n_resamples=n_resamples,
                vectorized=True,
                confidence_level=confidence_level,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
        distribution = np.atleast_2d(result.bootstrap_distribution)
        bounds = [_percentile_interval(d, confidence_level) for d in distribution]
    pairs = iter(bounds)
    intervals = {
        m: {k: dict(zip(("low", "high"), next(pairs), strict=True)) for k in INTERVAL_METRICS}
        for m in models
    }
    differences = {}
    for baseline in baselines:
        low, high = next(pairs)
        excludes = bool(low > 0 or high < 0) if math.isfinite(low) else False
        differences[baseline] = {"low": low, "high": high, "excludes_zero": excludes}
    return {
        "intervals": intervals,
        "differences": differences,
        "bootstrap": {
            "n_resamples": int(n_resamples),
            "seed": int(seed),
            "confidence_level": float(confidence_level),
            "cluster": cluster,
            "method": "percentile",
        },
    }
