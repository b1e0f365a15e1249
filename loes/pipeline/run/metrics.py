"""Metrics of a Loes-score regression on a set of scans: agreement and the transplant threshold.

Every metric function takes true and predicted scores and returns plain Python numbers
(``float`` or ``int``), so the result goes straight into JSON. A metric that is undefined for
the data at hand (a correlation with a constant input, a sensitivity without positive scans) is
``nan``: never an exception, never a warning. The run's summary over folds, with
subject-bootstrap intervals, is :mod:`loes.pipeline.report.summary`'s.

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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

__all__ = [
    "REGRESSION_METRICS",
    "SCORE_RANGES",
    "SCORE_STEP",
    "THRESHOLD_METRICS",
    "TRANSPLANT_THRESHOLD",
    "bland_altman",
    "lin_ccc",
    "mae_by_range",
    "regression_metrics",
    "score_ranges",
    "threshold_metrics",
]

#: Loes score at or above which haematopoietic stem-cell transplant is usually considered (Peters
#: et al. 2004, Blood 104:881-888; Miller et al. 2011, Blood 118:1971-1978 used 10). The report
#: takes its threshold from the ``report.threshold`` setting; this is its default.
TRANSPLANT_THRESHOLD = 9.0

#: Loes scores come in steps of half a point (an item scores 0, 0.5 or 1).
SCORE_STEP = 0.5

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
