"""Change between consecutive sessions of a subject, read from the out-of-fold predictions.

The question a clinic asks of a follow-up MRI is whether the disease has moved since the last
scan: a rise of :data:`~loes.data.follow_up.PROGRESSION` (0.5) Loes points or more is
radiological progression (Liberato et al., Neurology 2019;92:e1698). For every pair of
consecutive sessions of a subject (:func:`loes.data.follow_up.consecutive_pairs`: by age at the
scan when every scan has one, else by session id) this module compares the true change (later
score minus earlier score) with each predictor's change:

- the network's: with the paired change model (``change.model: paired``, the default), the
  paired network's out-of-fold change read from the two registered sessions
  (:mod:`loes.pipeline.cross_validation.change_model`), and beside it
  ``"subtraction"`` (:data:`SUBTRACTION`), the difference of the network's two out-of-fold
  scores; without it (``change.model: subtraction``, or a run from before it), that difference
  is the network's change. Folds keep subjects whole, so both sessions of a pair are in the
  same test fold and both predictions come from the one model that never saw the subject
  (checked: a pair whose sessions sit in different folds, as a hand-made table could have, is
  left out and counted);
- ``"no change"`` (:data:`NO_CHANGE`): 0 for every pair, the baseline a change must beat;
- each baseline's difference (ridge's). A baseline whose change is 0 on every pair (the median
  baseline predicts one score per fold) is the same as no change and is not shown twice.

Metrics per predictor (:data:`CHANGE_METRICS`): change MAE (Loes points), Pearson's r of
predicted and true change, and the detection of progression: sensitivity and specificity of a
predicted rise of 0.5 or more, ROC AUC of the predicted change
(:func:`~loes.pipeline.run.metrics.regression_metrics`,
:func:`~loes.pipeline.run.metrics.threshold_metrics` at 0.5). With repeats, metrics are computed
over the pairs of a repeat and averaged over repeats. Intervals are the report's subject
bootstrap (:func:`~loes.pipeline.report.bootstrap.bootstrap_intervals`: a drawn subject brings
all his pairs); ROC AUC, which that module leaves without an interval, gets one here from the
same resamples of subjects, as a weighted Mann-Whitney statistic (a subject drawn k times
weighs k), so every interval of a predictor and the paired differences come from one draw.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from loes.data.follow_up import PROGRESSION, consecutive_pairs
from loes.pipeline.report.bootstrap import (
    BOOTSTRAP_SEED,
    CONFIDENCE_LEVEL,
    N_RESAMPLES,
    bootstrap_intervals,
    percentile_bounds,
)
from loes.pipeline.run.metrics import regression_metrics, threshold_metrics
from loes.pipeline.run.predictions import NETWORK, PREDICTED_PREFIX, model_order, to_wide

__all__ = [
    "CHANGE_METRICS",
    "NO_CHANGE",
    "SUBTRACTION",
    "ChangePairs",
    "change_pairs",
    "summarize_change",
]

#: The predictor that says nothing changed: 0 for every pair.
NO_CHANGE = "no change"

#: The difference of the network's two scores, shown beside the paired network's change.
SUBTRACTION = "subtraction"

#: Metrics of a predicted change, each with a subject-bootstrap interval.
CHANGE_METRICS = ("mae", "pearson_r", "sensitivity", "specificity", "roc_auc")

NAN = float("nan")


class ChangePairs(NamedTuple):
    """What :func:`change_pairs` returns.

    ``pairs``: one row per consecutive pair per repeat, columns ``repeat, fold, subject,
    from_session, to_session, years`` (age difference, NaN without ages), ``true_from,
    true_to, true_change`` and ``change_<model>`` per model of the table (``change_network``,
    ``change_median``, ``change_ridge``; Loes points, later minus earlier); with the paired
    network's changes, ``change_network`` is its change (NaN for a pair it did not predict)
    and ``change_subtraction`` the difference of the network's scores. ``order``:
    ``"age"`` or ``"session id"``. ``n_across_folds``: pairs left out because their sessions
    were in different test folds (0 for any ``loes cv`` run).
    """

    pairs: pd.DataFrame
    order: str
    n_across_folds: int


def _model(column: str) -> str:
    return NETWORK if column == "predicted" else column[len(PREDICTED_PREFIX) :]


def change_pairs(predictions: pd.DataFrame, paired: pd.DataFrame | None = None) -> ChangePairs:
    """Every pair of consecutive sessions of a subject with the true and predicted changes.

    ``predictions`` is the long out-of-fold table (``repeat, fold, subject, session,
    loes_score, predicted, model`` and optionally ``age`` in years; Loes points), as
    :func:`loes.pipeline.run.predictions.read_predictions` returns it. Sessions are ordered
    within each subject and repeat by :func:`loes.data.follow_up.consecutive_pairs`. Pairs whose
    two sessions are in different test folds are left out (their change would mix two models)
    and counted. ``paired``: the paired network's out-of-fold changes
    (:func:`loes.pipeline.run.collect.collect_changes`), or None. See :class:`ChangePairs` for
    the result.

    Raises :class:`LoesError` for an inconsistent table (:func:`to_wide`) or a session of a
    subject predicted twice in one repeat.
    """
    wide = to_wide(predictions)
    columns = [c for c in wide.columns if c == "predicted" or c.startswith(PREDICTED_PREFIX)]
    found, order = consecutive_pairs(
        wide, values=["loes_score", "fold", *columns], groups=("repeat", "subject")
    )
    same_fold = found["fold_change"] == 0
    pairs = pd.DataFrame(
        {
            "repeat": found["repeat"].astype(int),
            "fold": found["fold_from"].astype(int),
            "subject": found["subject"].astype(str),
            "from_session": found["from_session"].astype(str),
            "to_session": found["to_session"].astype(str),
            "years": found["years"],
            "true_from": found["loes_score_from"],
            "true_to": found["loes_score_to"],
            "true_change": found["loes_score_change"],
            **{f"change_{_model(c)}": found[f"{c}_change"] for c in columns},
        }
    )
    pairs = pairs[same_fold.to_numpy()].reset_index(drop=True)
    if paired is not None:
        keys = ["repeat", "fold", "subject", "from_session", "to_session"]
        own = paired[[*keys, "predicted_change"]].astype(
            {"repeat": int, "fold": int, "subject": str, "from_session": str, "to_session": str}
        )
        pairs = pairs.rename(columns={f"change_{NETWORK}": f"change_{SUBTRACTION}"}).merge(
            own.rename(columns={"predicted_change": f"change_{NETWORK}"}),
            on=keys,
            how="left",
            validate="1:1",
        )
    return ChangePairs(pairs, order, int((~same_fold).sum()))


def _predictors(pairs: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The predictors shown (the network, no change, then the baselines) and those not shown,
    with why."""
    models = model_order([c[len("change_") :] for c in pairs.columns if c.startswith("change_")])
    models = sorted(models, key=lambda m: (m != NETWORK, m != SUBTRACTION))  # stable otherwise
    shown, hidden = [], {}
    for model in models:
        if model != NETWORK and len(pairs) and (pairs[f"change_{model}"] == 0).all():
            hidden[model] = (
                f"its change is 0 on every pair (it predicts one score per fold): the same as "
                f"{NO_CHANGE}"
            )
        else:
            shown.append(model)
    at = sum(m in shown for m in (NETWORK, SUBTRACTION))
    return [*shown[:at], NO_CHANGE, *shown[at:]], hidden


def _long(pairs: pd.DataFrame, predictors: list[str]) -> pd.DataFrame:
    """Pairs as the long predictions layout that :func:`bootstrap_intervals` reads: one row
    per pair per predictor, ``session`` naming the pair, ``loes_score`` the true change and
    ``predicted`` the predictor's change."""
    frames = []
    for predictor in predictors:
        predicted = 0.0 if predictor == NO_CHANGE else pairs[f"change_{predictor}"]
        frames.append(
            pd.DataFrame(
                {
                    "repeat": pairs["repeat"],
                    "fold": pairs["fold"],
                    "subject": pairs["subject"],
                    "session": pairs["from_session"] + " to " + pairs["to_session"],
                    "loes_score": pairs["true_change"],
                    "predicted": predicted,
                    "model": predictor,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _nan_mean(values: list[float]) -> float:
    finite_values = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite_values)) if finite_values else NAN


def _point_estimates(long: pd.DataFrame, progression: float) -> dict[str, float]:
    """:data:`CHANGE_METRICS` of one predictor over the pairs of each repeat, averaged."""
    by_repeat = []
    for _, rows in long.groupby("repeat", sort=True):
        true, pred = rows["loes_score"].to_numpy(float), rows["predicted"].to_numpy(float)
        by_repeat.append(
            {**regression_metrics(true, pred), **threshold_metrics(true, pred, progression)}
        )
    return {m: _nan_mean([r[m] for r in by_repeat]) for m in CHANGE_METRICS}


def _auc_statistic(long: pd.DataFrame, predictors: list[str], progression: float):
    """The vectorised statistic for :func:`scipy.stats.bootstrap`: indices of drawn subjects
    (..., n_subjects; subjects in sorted order, as :func:`bootstrap_intervals` numbers them) to
    each predictor's ROC AUC, averaged over repeats, (n_predictors, ...).

    A subject drawn k times weighs k: the AUC is the weighted share of (progression, other)
    pairs of pairs ranked right, ties counting one half, which is what
    :func:`sklearn.metrics.roc_auc_score` gives on the resample with its duplicates."""
    subjects, cluster = np.unique(long["subject"].to_numpy(str), return_inverse=True)
    n_subjects = len(subjects)
    parts = []  # per predictor: [(positive clusters, negative clusters, ranked-right matrix)]
    for predictor in predictors:
        in_predictor = (long["model"] == predictor).to_numpy()
        per_repeat = []
        for repeat in np.unique(long["repeat"]):
            rows = in_predictor & (long["repeat"] == repeat).to_numpy()
            score = long["predicted"].to_numpy(float)[rows]
            positive = long["loes_score"].to_numpy(float)[rows] >= progression
            s_pos, s_neg = score[positive][:, None], score[~positive][None, :]
            right = (s_pos > s_neg) + 0.5 * (s_pos == s_neg)
            per_repeat.append((cluster[rows][positive], cluster[rows][~positive], right))
        parts.append(per_repeat)

    def statistic(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        flat = np.asarray(drawn).reshape(-1, n_subjects)
        counts = np.zeros(flat.shape)
        np.add.at(counts, (np.arange(flat.shape[0])[:, None], flat), 1.0)
        outputs = []
        for per_repeat in parts:
            aucs = []
            for positive, negative, right in per_repeat:
                w_pos, w_neg = counts[:, positive], counts[:, negative]
                total = w_pos.sum(axis=1) * w_neg.sum(axis=1)
                ranked = np.einsum("bi,ij,bj->b", w_pos, right, w_neg)
                aucs.append(np.where(total > 0, ranked / np.where(total > 0, total, 1), np.nan))
            with warnings.catch_warnings():  # a resample with one class in every repeat
                warnings.simplefilter("ignore", RuntimeWarning)
                outputs.append(np.nanmean(np.stack(aucs), axis=0))
        return np.stack(outputs).reshape(len(outputs), *np.shape(drawn)[:-1])

    return statistic, n_subjects


def summarize_change(
    predictions: pd.DataFrame,
    paired: pd.DataFrame | None = None,
    progression: float = PROGRESSION,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence_level: float = CONFIDENCE_LEVEL,
) -> dict[str, Any]:
    """The change section of the report (``report.json["change"]``) from the long out-of-fold
    predictions and, when the run trained one, the paired network's changes (see
    :func:`change_pairs`; Loes points).

    Returns::

        {"method": "paired" | "subtraction",  # what the network's change is
         "progression": 0.5,            # a true rise of at least this is progression
         "order": "age" | "session id", # what put the sessions of a subject in order
         "n_pairs", "n_subjects",       # distinct consecutive pairs, subjects with a pair
         "n_progressions",              # distinct pairs with a true rise >= progression
         "n_repeats", "n_across_folds", # pairs left out: sessions in different test folds
         "mean_abs_true_change",        # mean |true change| (the no-change MAE), Loes points
         "predictors": ["network", "subtraction", "no change", "ridge"],
         "not_shown": {"median": "why"},  # baselines whose change is always 0
         "metrics": {predictor: {metric: value}},          # each of CHANGE_METRICS
         "intervals": {predictor: {metric: {"low", "high"}}},
         "differences": {predictor: {"mae_difference", "low", "high", "excludes_zero"}},
         "bootstrap": {"n_resamples", "seed", "confidence_level", "cluster", "method"}}

    ``differences`` holds the network's change MAE minus each other predictor's with its
    paired subject-bootstrap interval (below 0 the network is better); empty without a
    network. A pair that a shown model did not predict both sessions of is left out (never
    the case in a ``loes cv`` run). Undefined values (Pearson's r of the constant no-change
    predictor, an interval with fewer than 2 subjects) are ``nan``. Without any pair, the
    counts are 0 and the dicts empty.

    Raises :class:`LoesError` for an inconsistent table (see :func:`change_pairs`).

    Examples::

        >>> change = summarize_change(read_predictions("run/predictions.csv"))  # doctest: +SKIP
        >>> metrics = change["metrics"]  # doctest: +SKIP
        >>> metrics["network"]["roc_auc"], metrics["no change"]["mae"]  # doctest: +SKIP
        (0.76, 0.54)
    """
    found = change_pairs(predictions, paired)
    pairs = found.pairs
    predictors, hidden = _predictors(pairs)
    changes = [f"change_{p}" for p in predictors if p != NO_CHANGE]
    pairs = pairs.dropna(subset=changes) if changes else pairs
    distinct = pairs.drop_duplicates(["subject", "from_session", "to_session"])
    result: dict[str, Any] = {
        "method": "subtraction" if paired is None else "paired",
        "progression": float(progression),
        "order": found.order,
        "n_pairs": len(distinct),
        "n_subjects": int(distinct["subject"].nunique()),
        "n_progressions": int((distinct["true_change"] >= progression).sum()),
        "n_repeats": int(pairs["repeat"].nunique()),
        "n_across_folds": found.n_across_folds,
        "mean_abs_true_change": float(distinct["true_change"].abs().mean()) if len(pairs) else NAN,
        "predictors": predictors if len(pairs) else [],
        "not_shown": hidden,
        "metrics": {},
        "intervals": {},
        "differences": {},
        "bootstrap": {
            "n_resamples": int(n_resamples),
            "seed": int(seed),
            "confidence_level": float(confidence_level),
            "cluster": "subject",
            "method": "percentile",
        },
    }
    if pairs.empty:
        return result
    long = _long(pairs, predictors)
    metrics = {p: _point_estimates(long[long["model"] == p], progression) for p in predictors}
    intervals = bootstrap_intervals(
        long,
        progression,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
    )
    statistic, n_subjects = _auc_statistic(long, predictors, progression)
    if n_subjects < 2 or n_resamples < 1:
        auc_bounds = [(NAN, NAN)] * len(predictors)
    else:
        auc_bounds = percentile_bounds(statistic, n_subjects, n_resamples, seed, confidence_level)
    for predictor, (low, high) in zip(predictors, auc_bounds, strict=True):
        result["intervals"][predictor] = {
            **{m: intervals["intervals"][predictor][m] for m in CHANGE_METRICS if m != "roc_auc"},
            "roc_auc": {"low": low, "high": high},
        }
    result["metrics"] = metrics
    if NETWORK in predictors:
        result["differences"] = {
            other: {
                "mae_difference": metrics[NETWORK]["mae"] - metrics[other]["mae"],
                **interval,
            }
            for other, interval in intervals["differences"].items()
        }
    return result
