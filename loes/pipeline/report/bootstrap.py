"""Subject-bootstrap confidence intervals of the pooled metrics.

Intervals resample *subjects*, not scans: the sessions of one boy share his anatomy and his
disease course, so they are not independent draws. This is the cluster bootstrap (Field & Welsh
2007, J R Stat Soc B 69:369-390): draw subjects with replacement, keep all their scans,
recompute the metric. Intervals are percentile intervals of :data:`N_RESAMPLES` resamples drawn
by :func:`scipy.stats.bootstrap` with a fixed seed, so the same predictions always give the same
intervals.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from loes.pipeline.run.metrics import TRANSPLANT_THRESHOLD
from loes.pipeline.run.predictions import NETWORK, check_predictions, model_order

__all__ = [
    "BOOTSTRAP_SEED",
    "CONFIDENCE_LEVEL",
    "INTERVAL_METRICS",
    "MAX_UNDEFINED_SHARE",
    "N_RESAMPLES",
    "bootstrap_intervals",
    "percentile_bounds",
]

NAN = float("nan")

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


def _resampled_metrics(sums: np.ndarray, models: list[str], baselines: list[str]):
    """The vectorised statistic :func:`scipy.stats.bootstrap` draws: indices of drawn clusters,
    (..., n_clusters), to each model's :data:`INTERVAL_METRICS` then the network's MAE minus
    each baseline's, (outputs, ...), from the per-cluster ``sums`` of :func:`_cluster_sums`."""
    n_clusters = sums.shape[0]

    def statistic(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
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

    return statistic


def percentile_bounds(
    statistic, n_clusters: int, n_resamples: int, seed: int, confidence_level: float
) -> list[tuple[float, float]]:
    """``(low, high)`` of each output of ``statistic`` over ``n_resamples`` seeded resamples of
    the clusters (:func:`scipy.stats.bootstrap`, percentile method)."""
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
    return [_percentile_interval(d, confidence_level) for d in distribution]


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
    table = check_predictions(predictions)
    models = model_order(table["model"].unique())
    baselines = [m for m in models if m != NETWORK] if NETWORK in models else []
    sums, n_clusters = _cluster_sums(table, models, threshold, cluster)

    statistic = _resampled_metrics(sums, models, baselines)
    n_outputs = len(models) * len(INTERVAL_METRICS) + len(baselines)
    if n_clusters < 2 or n_resamples < 1:
        bounds = [(NAN, NAN)] * n_outputs
    else:
        bounds = percentile_bounds(statistic, n_clusters, n_resamples, seed, confidence_level)
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
