"""The report's tables and headline as text cells, shared by markdown, HTML and the terminal.

Every function takes the report dict (:func:`loes.pipeline.metrics.summarize` plus
``created``, ``loes_version`` and ``config``, as written to ``report.json``) where undefined
values are ``None`` (or ``nan``); they are shown as ``–``. MAEs, RMSEs and biases are in Loes
points.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from loes.pipeline.metrics import NETWORK, REGRESSION_METRICS

__all__ = [
    "METRIC_LABELS",
    "UNDEFINED_NOTE",
    "Table",
    "headline",
    "main_model",
    "mean_sd",
    "number",
    "ratio_text",
    "tables",
]

#: How each metric key is written in a table header.
METRIC_LABELS = {
    "mae": "MAE",
    "rmse": "RMSE",
    "standardized_rmse": "sRMSE",
    "r2": "R²",
    "pearson_r": "Pearson r",
    "spearman_rho": "Spearman ρ",
    "lin_ccc": "Lin CCC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "roc_auc": "ROC AUC",
}

#: The footnote on undefined values that ends every report.
UNDEFINED_NOTE = (
    "Undefined values (a correlation in a fold with constant scores, a sensitivity without "
    "positive scans) are shown as – and stored as null in report.json."
)


class Table(NamedTuple):
    """One table of the report: a title, a note under it, a header and rows of text cells."""

    title: str
    note: str
    header: list[str]
    rows: list[list[str]]


def number(value: Any, digits: int = 2) -> str:
    """``value`` as text: ints as they are, floats to ``digits`` decimals, ``None``/nan as ``–``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def mean_sd(mean: Any, sd: Any, digits: int = 2) -> str:
    """``"mean ± sd"`` as text, or the mean alone when the SD is undefined (a single fold)."""
    if number(sd, digits) == "–":
        return number(mean, digits)
    return f"{number(mean, digits)} ± {number(sd, digits)}"


def ratio_text(model: str, ratios: dict[str, Any]) -> str:
    """The network's pooled MAE over ``model``'s as text; ``–`` for the network itself."""
    if model not in ratios:
        return "–"
    return number(ratios[model]["pooled_mae_ratio"])


def main_model(report: dict[str, Any]) -> str:
    """The model the headline is about: the network, else the first model."""
    return NETWORK if NETWORK in report["models"] else report["models"][0]


def _fold_name(fold: dict[str, Any], n_repeats: int) -> str:
    return f"{fold['repeat']}/{fold['fold']}" if n_repeats > 1 else str(fold["fold"])


def headline(report: dict[str, Any]) -> tuple[str, list[str]]:
    """A one-sentence headline (the pooled MAEs and ratios) and the run's counts as text.

    The counts are ``["N scans", "N subjects", "K folds"]``, plus ``"R repeats"`` when repeated.
    """
    metrics = report["metrics"]
    counts = [
        f"{report['n_scans']} scans",
        f"{report['n_subjects']} subjects",
        f"{report['n_folds']} folds",
    ]
    if report["n_repeats"] > 1:
        counts.append(f"{report['n_repeats']} repeats")
    main = main_model(report)
    mae = number(metrics[main]["pooled"]["mae"])
    text = f"Pooled out-of-fold MAE of the {main}: {mae} Loes points"
    comparisons = [
        f"{number(metrics[b]['pooled']['mae'])} for the {b} baseline "
        f"(ratio {number(r['pooled_mae_ratio'])})"
        for b, r in report["ratios"].items()
    ]
    if comparisons:
        text += " vs " + "; ".join(comparisons)
    return text + ".", counts


def tables(report: dict[str, Any]) -> list[Table]:
    """Every table of the report, in order.

    Pooled metrics per model, metrics per fold, mean ± SD over folds, MAE by true-score range,
    the transplant threshold as a classification and, when the network is among the models,
    its Bland-Altman agreement.
    """
    return [
        _pooled(report),
        _per_fold(report),
        _over_folds(report),
        _by_range(report),
        _threshold(report),
        *_bland_altman(report),
    ]


def _pooled(report: dict[str, Any]) -> Table:
    models, metrics, ratios = report["models"], report["metrics"], report["ratios"]
    n_repeats = report["n_repeats"]
    repeats_note = (
        f" Pooled metrics are computed over all scans of a repeat, then averaged over the "
        f"{n_repeats} repeats."
        if n_repeats > 1
        else ""
    )
    header = ["model", "pooled MAE", "fold MAE (mean ± SD)"]
    header += [METRIC_LABELS[m] for m in REGRESSION_METRICS if m != "mae"]
    header += [f"AUC @{report['threshold']:g}", "MAE ratio"]
    rows = []
    for model in models:
        pooled = metrics[model]["pooled"]
        row = [model, number(pooled["mae"])]
        row.append(mean_sd(metrics[model]["fold_mean"]["mae"], metrics[model]["fold_sd"]["mae"]))
        row += [number(pooled[m]) for m in REGRESSION_METRICS if m != "mae"]
        row += [number(pooled["roc_auc"]), ratio_text(model, ratios)]
        rows.append(row)
    return Table(
        "Pooled out-of-fold metrics",
        "Every scan predicted once by a model that never saw its subject. sRMSE = RMSE / SD of "
        "the true scores (population SD); MAE ratio = network MAE / model MAE (below 1: the "
        "network is better)." + repeats_note,
        header,
        rows,
    )


def _per_fold(report: dict[str, Any]) -> Table:
    models, metrics, ratios = report["models"], report["metrics"], report["ratios"]
    header = ["fold", "scans", "subjects", *[f"MAE {m}" for m in models]]
    if NETWORK in models:
        header += [f"ratio vs {b}" for b in models if b != NETWORK]
    header += [f"{METRIC_LABELS[m]} {models[0]}" for m in ("pearson_r", "lin_ccc")]
    fold_maes = {m: {(f["repeat"], f["fold"]): f for f in metrics[m]["folds"]} for m in models}
    rows = []
    for fold in metrics[models[0]]["folds"]:
        key = (fold["repeat"], fold["fold"])
        row = [_fold_name(fold, report["n_repeats"]), str(fold["n_scans"]), str(fold["n_subjects"])]
        row += [number(fold_maes[m].get(key, {}).get("mae")) for m in models]
        if NETWORK in models:
            for baseline in models:
                if baseline != NETWORK:
                    by_key = {
                        (f["repeat"], f["fold"]): f["mae_ratio"] for f in ratios[baseline]["folds"]
                    }
                    row.append(number(by_key.get(key)))
        row += [number(fold["pearson_r"]), number(fold["lin_ccc"])]
        rows.append(row)
    return Table(
        "Per fold",
        "Fold = repeat/fold when repeated. MAE in Loes points on the fold's held-out subjects.",
        header,
        rows,
    )


def _over_folds(report: dict[str, Any]) -> Table:
    models, metrics = report["models"], report["metrics"]
    names = [*REGRESSION_METRICS, "sensitivity", "specificity", "roc_auc"]
    header = ["model", *[METRIC_LABELS[m] for m in names]]
    rows = []
    for model in models:
        mean, sd = metrics[model]["fold_mean"], metrics[model]["fold_sd"]
        rows.append([model, *[mean_sd(mean[m], sd[m]) for m in names]])
    return Table(
        "Mean ± SD over folds",
        "Each metric computed within a fold, then averaged over the "
        f"{metrics[models[0]]['n_folds']} folds "
        "(sample SD). Small folds make correlations noisy; prefer the pooled table.",
        header,
        rows,
    )


def _by_range(report: dict[str, Any]) -> Table:
    models, metrics, labels = report["models"], report["metrics"], report["score_ranges"]
    counts = metrics[models[0]]["mae_by_range"]
    header = ["model", *[f"{label} (n={counts[label]['n']})" for label in labels]]
    rows = [
        [m, *[number(metrics[m]["mae_by_range"][label]["mae"]) for label in labels]] for m in models
    ]
    return Table(
        "MAE by true-score range",
        "Pooled MAE of the scans whose true Loes score falls in each range. A model that "
        "predicts the median does well at 0 and badly above 9.",
        header,
        rows,
    )


def _threshold(report: dict[str, Any]) -> Table:
    threshold = report["threshold"]
    header = [
        "model",
        f"positive (≥{threshold:g})",
        "negative",
        "sensitivity",
        "specificity",
        "ROC AUC",
    ]
    rows = []
    for model in report["models"]:
        t = report["metrics"][model]["threshold"]
        rows.append(
            [model, number(t["n_positive"]), number(t["n_negative"])]
            + [number(t[m]) for m in ("sensitivity", "specificity", "roc_auc")]
        )
    return Table(
        f"Transplant threshold (Loes ≥ {threshold:g}) as a classification",
        "A scan is positive when its true score is at or above the threshold and called "
        "positive when its predicted score is; ROC AUC ranks scans by the predicted score.",
        header,
        rows,
    )


def _bland_altman(report: dict[str, Any]) -> list[Table]:
    if NETWORK not in report["models"] or not report["metrics"][NETWORK].get("bland_altman"):
        return []
    ba = report["metrics"][NETWORK]["bland_altman"]
    return [
        Table(
            "Bland-Altman agreement (network)",
            "Difference = predicted - true. 95% limits of agreement = bias ± 1.96 SD.",
            ["bias", "SD of differences", "lower limit", "upper limit"],
            [[number(ba[k]) for k in ("bias", "sd_difference", "loa_lower", "loa_upper")]],
        )
    ]
