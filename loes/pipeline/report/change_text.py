"""The change section's words: the one-sentence verdict and the table with its note, from
``report.json["change"]`` (:func:`~loes.pipeline.report.change.summarize_change`)."""

from __future__ import annotations

from typing import Any

from loes.data.problems import plural
from loes.pipeline.report.change import CHANGE_METRICS, NO_CHANGE
from loes.pipeline.report.numbers import finite, interval_text, number, signed, with_interval
from loes.pipeline.report.table import Table
from loes.pipeline.run.predictions import NETWORK

__all__ = ["CHANGE_LABELS", "CHANGE_TITLE", "change_sentence", "change_table"]

#: How each of :data:`CHANGE_METRICS` is written in the table header.
CHANGE_LABELS = {
    "mae": "change MAE",
    "pearson_r": "Pearson r",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "roc_auc": "ROC AUC",
}

#: The heading of the change section on every page.
CHANGE_TITLE = "Change between sessions"


def _counts(change: dict[str, Any]) -> str:
    return (
        f"{plural(change['n_pairs'], 'pair')} of consecutive sessions of "
        f"{plural(change['n_subjects'], 'subject')}, {change['n_progressions']} of the pairs "
        f"with progression"
    )


def change_sentence(change: dict[str, Any] | None) -> str:
    """The verdict on change in one sentence: whether the network's predicted change beats
    predicting no change on MAE (with the paired interval), and how well it detects progression
    (ROC AUC with its interval). ``change`` is ``report["change"]`` (``None`` for undefined
    values); an old report without it, or a run without pairs, gets a sentence saying so."""
    if not change:
        return "This report predates the change section: run loes report again to add it."
    if not change["n_pairs"]:
        return (
            "No subject has two sessions in the out-of-fold predictions, so there is no change "
            "between sessions to measure."
        )
    metrics, intervals = change["metrics"], change["intervals"]
    main = NETWORK if NETWORK in metrics else change["predictors"][0]
    if main == NO_CHANGE:
        return f"{_counts(change).capitalize()}; no model predicts a change."
    mae, auc = metrics[main]["mae"], metrics[main]["roc_auc"]
    ci_mae = interval_text(intervals[main]["mae"])
    ci_auc = interval_text(intervals[main]["roc_auc"])
    opening = (
        f"Over {_counts(change)} (a rise of {change['progression']:g} or more), the "
        + (
            "paired network's"
            if change.get("method") == "paired" and main == NETWORK
            else f"{main}'s"
        )
        + f" predicted change is off by {number(mae)} Loes points on average"
        + (f" (95% CI {ci_mae})" if ci_mae != "–" else "")
    )
    versus = change["differences"].get(NO_CHANGE, {})
    still = metrics[NO_CHANGE]["mae"]
    difference, ci = versus.get("mae_difference"), interval_text(versus)
    if not finite(difference) or ci == "–":
        against = f"; predicting no change is off by {number(still)}"
    elif versus.get("excludes_zero"):
        word = "better" if difference < 0 else "worse"
        against = (
            f", {word} than predicting no change ({number(still)}; difference "
            f"{signed(difference)}, 95% CI {ci})"
        )
    else:
        against = (
            f", not clearly different from predicting no change ({number(still)}; difference "
            f"{signed(difference)}, 95% CI {ci})"
        )
    detects = f"; it detects progression with ROC AUC {number(auc)}" + (
        f" (95% CI {ci_auc})" if ci_auc != "–" else ""
    )
    return opening + against + detects + "."


def _note(change: dict[str, Any]) -> str:
    order = (
        "by age at the scan (ties by session id)"
        if change["order"] == "age"
        else "by session id (not every scan has an age in predictions.csv)"
    )
    p = f"{change['progression']:g}"
    parts = [
        f"Change = the later session's score minus the earlier's (Loes points), for each of "
        f"{_counts(change)}; sessions are ordered {order}.",
        "Both sessions of every pair were in the same test fold (folds keep subjects whole), so "
        "a predicted change comes from the fold's models that never saw the subject.",
        (
            "The network's change is the paired network's: it reads the later session "
            "registered onto the earlier one and subtracted; subtraction is the difference of "
            "the network's two out-of-fold scores."
            if change.get("method") == "paired"
            else "The network's change is the difference of its two out-of-fold scores."
        ),
    ]
    if change.get("n_across_folds"):
        parts.append(
            f"{plural(change['n_across_folds'], 'pair')} whose sessions were in different "
            f"test folds {'is' if change['n_across_folds'] == 1 else 'are'} left out."
        )
    parts.append(
        f"Progression = a true rise of {p} or more (Liberato et al. 2019); sensitivity and "
        f"specificity call it when the predicted rise is {p} or more; ROC AUC ranks the pairs "
        f"by the predicted change. {NO_CHANGE.capitalize()} predicts 0 for every pair."
    )
    for model, why in (change.get("not_shown") or {}).items():
        parts.append(f"The {model} baseline is not shown: {why}.")
    if change.get("n_repeats", 1) > 1:
        parts.append(
            f"Metrics are computed over the pairs of a repeat, then averaged over the "
            f"{change['n_repeats']} repeats."
        )
    settings = change.get("bootstrap") or {}
    parts.append(
        f"95% intervals from {settings.get('n_resamples', '?')} bootstrap resamples of the "
        f"{change['n_subjects']} subjects (all pairs of a drawn subject together, seed "
        f"{settings.get('seed', '?')})."
    )
    return " ".join(parts)


def change_table(change: dict[str, Any] | None) -> Table | None:
    """The change section's table: one row per predictor, each of :data:`CHANGE_METRICS` with
    its 95% interval, and the note saying how the pairs were made; ``None`` without pairs."""
    if not change or not change["n_pairs"]:
        return None
    rows = [
        [
            predictor,
            *[
                with_interval(
                    change["metrics"][predictor][m], change["intervals"][predictor].get(m)
                )
                for m in CHANGE_METRICS
            ],
        ]
        for predictor in change["predictors"]
    ]
    return Table(
        CHANGE_TITLE,
        _note(change),
        ["predictor", *[CHANGE_LABELS[m] for m in CHANGE_METRICS]],
        rows,
    )
