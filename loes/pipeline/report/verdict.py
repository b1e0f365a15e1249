"""The verdict at the transplant threshold, beside the one on MAE: a network can have the lower
MAE and still rank or call the scans around the threshold worse than a baseline, and the
threshold is where a score becomes a decision."""

from __future__ import annotations

from typing import Any

from loes.pipeline.report.numbers import finite, number
from loes.pipeline.run.predictions import NETWORK

__all__ = ["THRESHOLD_KEYS", "baselines_better_at_threshold", "threshold_sentences"]

#: the threshold metrics the verdict weighs, with how they are written
THRESHOLD_KEYS = {"roc_auc": "ROC AUC", "sensitivity": "sensitivity", "specificity": "specificity"}


def _shown(value: Any) -> float | None:
    """A metric as the report shows it (two decimals), or None when undefined."""
    return float(number(value)) if finite(value) else None


def _higher(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys of THRESHOLD_KEYS where ``a`` is higher than ``b`` as the report shows them."""
    return [
        key
        for key in THRESHOLD_KEYS
        if _shown(a.get(key)) is not None
        and _shown(b.get(key)) is not None
        and _shown(a[key]) > _shown(b[key])
    ]


def baselines_better_at_threshold(report: dict[str, Any]) -> dict[str, list[str]]:
    """``{baseline: [metric keys of THRESHOLD_KEYS where it beats the network]}`` for each
    baseline that does better at the threshold: a higher ROC AUC (it ranks the scans around
    the threshold better), or a sensitivity and a specificity both at least the network's, one
    higher (a trade of one for the other, as a constant predictor's perfect specificity, is
    not better). Compared as the report shows them (two decimals), so that the sentence agrees
    with the tables. Empty without a network."""
    metrics = report["metrics"]
    if NETWORK not in metrics:
        return {}
    network = metrics[NETWORK]["pooled"]
    found = {}
    for baseline in (m for m in report["models"] if m != NETWORK):
        pooled = metrics[baseline]["pooled"]
        higher, lower = _higher(pooled, network), _higher(network, pooled)
        calls = {"sensitivity", "specificity"}
        if "roc_auc" in higher or (calls & set(higher) and not calls & set(lower)):
            found[baseline] = higher
    return found


def threshold_sentences(report: dict[str, Any]) -> list[str]:
    """The verdict at ``report["threshold"]``: the main model's sensitivity, specificity and
    ROC AUC with the number of positive scans, then one sentence per baseline that does better
    there (:func:`baselines_better_at_threshold`), naming the metrics each wins, saying so even
    when the network's MAE is lower.

    Examples::

        >>> threshold_sentences(report)[1]  # doctest: +SKIP
        "The ridge baseline does better at the threshold (ROC AUC 1.00 against 0.98); the
        network has sensitivity 0.86 against 0.80 and the lower MAE: weigh the threshold calls,
        not the MAE alone."
    """
    metrics, threshold = report["metrics"], report["threshold"]
    main = NETWORK if NETWORK in metrics else report["models"][0]
    pooled = metrics[main]["pooled"]
    counts = metrics[main].get("threshold") or {}
    positives = counts.get("n_positive")
    of = f", {number(positives)} positive of {report['n_scans']} scans" if positives else ""
    sentences = [
        f"At the transplant threshold (Loes ≥ {threshold:g}{of}) the {main} has "
        + ", ".join(f"{label} {number(pooled.get(key))}" for key, label in THRESHOLD_KEYS.items())
        + "."
    ]
    network = metrics.get(NETWORK, {}).get("pooled", {})
    for baseline, keys in baselines_better_at_threshold(report).items():
        base = metrics[baseline]["pooled"]
        wins = ", ".join(
            f"{THRESHOLD_KEYS[k]} {number(base[k])} against {number(network[k])}" for k in keys
        )
        losses = [
            f"{THRESHOLD_KEYS[k]} {number(network[k])} against {number(base[k])}"
            for k in _higher(network, base)
        ]
        lower = finite(network.get("mae")) and network["mae"] < base.get("mae", float("nan"))
        if losses:
            although = f"; the network has {', '.join(losses)}" + (
                " and the lower MAE" if lower else ""
            )
        else:
            although = ", although the network's MAE is lower" if lower else ""
        sentences.append(
            f"The {baseline} baseline does better at the threshold ({wins}){although}: weigh "
            "the threshold calls, not the MAE alone."
        )
    return sentences
