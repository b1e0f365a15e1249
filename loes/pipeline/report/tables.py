"""The report's tables, headline and notices as text, shared by markdown, HTML and the terminal.

Every function takes the report dict (:func:`loes.pipeline.report.summary.summarize` plus
``created``, ``loes_version``, ``config``, ``run``, ``completeness`` and ``flags``, as written to
``report.json``) where undefined values are ``None`` (or ``nan``); they are shown as ``–``.
MAEs, RMSEs, biases and differences are in Loes points. No number is ever written ``-0.00``.
"""

from __future__ import annotations

from typing import Any

from loes.data.problems import plural
from loes.pipeline.report.bootstrap import INTERVAL_METRICS
from loes.pipeline.report.left_out import set_aside_text
from loes.pipeline.report.numbers import (
    finite,
    interval_text,
    mean_sd,
    number,
    range_label,
    signed,
    with_interval,
)
from loes.pipeline.report.scan_lists import scan_tables
from loes.pipeline.report.table import Table
from loes.pipeline.report.verdict import threshold_sentences
from loes.pipeline.run.metrics import REGRESSION_METRICS
from loes.pipeline.run.predictions import NETWORK

__all__ = [
    "METRIC_LABELS",
    "UNDEFINED_NOTE",
    "Table",
    "comparisons",
    "headline",
    "main_model",
    "notices",
    "tables",
    "what_was_run",
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

#: Metrics whose label names the transplant threshold.
THRESHOLD_LABELLED = ("sensitivity", "specificity", "roc_auc")

#: The footnote on undefined values that ends every report.
UNDEFINED_NOTE = (
    "Undefined values (a correlation in a fold with constant scores, a sensitivity without "
    "positive scans) are shown as – and stored as null in report.json."
)


def main_model(report: dict[str, Any]) -> str:
    """The model the headline is about: the network, else the first model."""
    return NETWORK if NETWORK in report["models"] else report["models"][0]


def _fold_name(fold: dict[str, Any], n_repeats: int) -> str:
    return f"{fold['repeat']}/{fold['fold']}" if n_repeats > 1 else str(fold["fold"])


def comparisons(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The network against each baseline, in numbers and in words.

    One dict per baseline: ``baseline``, ``baseline_mae``, ``difference`` (network MAE minus
    baseline MAE, Loes points; below 0 the network is better), ``interval`` (its paired
    subject-bootstrap interval, text), ``verdict`` (``"better"``, ``"worse"``, ``"unclear"``:
    the interval includes 0, or ``"undefined"``), ``words`` (the verdict as a short phrase) and
    ``sentence`` (the comparison as a sentence for the headline).
    """
    metrics = report["metrics"]
    found = []
    for baseline, d in report.get("differences", {}).items():
        difference = d.get("mae_difference")
        ci = interval_text(d)
        base = number(metrics[baseline]["pooled"]["mae"])
        if not finite(difference):
            verdict, words = "undefined", "no difference can be computed"
        elif ci == "–":
            verdict = "undefined"
            words = f"{'better' if difference < 0 else 'worse'}; no interval"
        elif d.get("excludes_zero"):
            verdict = "better" if difference < 0 else "worse"
            words = f"network {verdict}: the interval excludes 0"
        else:
            verdict, words = "unclear", "no clear difference: the interval includes 0"
        if verdict in ("better", "worse"):
            size = number(abs(difference))
            sentence = (
                f"{verdict.capitalize()} than the {baseline} baseline ({base}) by {size} points: "
                f"difference {signed(difference)}, 95% CI {ci}, which excludes 0."
            )
        elif verdict == "unclear":
            sentence = (
                f"Not clearly better or worse than the {baseline} baseline ({base}): difference "
                f"{signed(difference)} points, 95% CI {ci}, which includes 0."
            )
        else:
            sentence = f"Against the {baseline} baseline ({base}): difference {signed(difference)}."
        found.append(
            {
                "baseline": baseline,
                "baseline_mae": base,
                "difference": signed(difference),
                "interval": ci,
                "verdict": verdict,
                "words": words,
                "sentence": sentence,
            }
        )
    return found


def headline(report: dict[str, Any]) -> tuple[str, list[str]]:
    """The headline (the pooled MAE with its interval, the network against each baseline in
    words, then the verdict at the transplant threshold:
    :func:`~loes.pipeline.report.verdict.threshold_sentences`) and the run's counts as text.

    The counts are ``["N scans", "N subjects", "K folds"]``, plus ``"R repeats"`` when repeated.
    """
    metrics = report["metrics"]
    counts = [
        plural(report["n_scans"], "scan"),
        plural(report["n_subjects"], "subject"),
        plural(report["n_folds"], "fold"),
    ]
    if report["n_repeats"] > 1:
        counts.append(f"{report['n_repeats']} repeats")
    main = main_model(report)
    pooled = metrics[main]["pooled"]
    ci = interval_text(metrics[main].get("pooled_ci", {}).get("mae"))
    text = f"{main.capitalize()} pooled MAE: {number(pooled['mae'])} Loes points"
    text += f" (95% CI {ci})." if ci != "–" else "."
    sentences = [c["sentence"] for c in comparisons(report)]
    return " ".join([text, *sentences, *threshold_sentences(report)]), counts


def _join(values: Any, unit: str = "") -> str:
    if not isinstance(values, list) or not values:
        return "unknown"
    return " × ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + unit


def what_was_run(report: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` pairs that say what was run: model (with the dropout in effect), data,
    scans and subjects, the scans set aside and why (when the run records them), folds and
    repeats, epochs, resolution and input size, device (with mixed precision in effect) and
    loes versions.

    From ``report["run"]`` (:func:`loes.pipeline.report.run_info.describe_run`); what the run
    folder does not record is ``unknown``.
    """
    run = report.get("run") or {}
    unknown = "unknown (no config.yaml)"
    epochs = run.get("epochs")
    training = unknown if epochs is None else f"at most {epochs} epochs"
    if run.get("patience") is not None and epochs is not None:
        training += f", early stopping after {run['patience']} epochs without improvement"
    if run.get("epochs_run"):
        low, high = run["epochs_run"]
        training += f"; folds trained {low}" + (f"-{high}" if high != low else "") + " epochs"
    repeats = run.get("n_repeats", report["n_repeats"])
    version = run.get("loes_version")
    written = report.get("loes_version") or "?"
    versions = f"trained with {version}, report by {written}" if version else f"report by {written}"
    rows = [
        ("Model", _with_effective(run.get("model") or unknown, run, "model.dropout", "dropout")),
        ("Data", run.get("data_source") or unknown),
        ("Scans", f"{report['n_scans']} scans of {report['n_subjects']} subjects"),
        (
            "Folds",
            f"{plural(run.get('n_folds', report['n_folds']), 'fold')} × "
            f"{plural(repeats, 'repeat')}, grouped by subject",
        ),
        ("Training", training),
        (
            "Resolution",
            f"{_join(run.get('pixdim'), ' mm')} voxels, input {_join(run.get('spatial_size'))}",
        ),
        ("Device", _with_effective(run.get("device") or "unknown", run, "training.amp", "amp")),
        ("loes", versions),
    ]
    aside = set_aside_text(report)
    if aside is not None:
        rows.insert(3, ("Set aside", aside))
    return rows


def _with_effective(text: str, run: dict[str, Any], key: str, what: str) -> str:
    """``text`` and the value in effect of setting ``key`` (``run["effective"]``, see
    :func:`loes.pipeline.run.effective.effective_values`): ``"alexnet3d (dropout 0.2, the
    network's own)"``, ``"cpu (mixed precision off: CUDA only)"``, ``"cuda (mixed precision off:
    deterministic)"``."""
    value = (run.get("effective") or {}).get(key)
    if not value:
        return text
    if what == "amp":
        if value["effective"]:
            return text
        why = "deterministic" if "deterministic" in value["why"] else "CUDA only"
        return f"{text} (mixed precision off: {why})"
    return f"{text} ({what} {value['effective']}, the network's own)"


def notices(report: dict[str, Any]) -> list[str]:
    """The warnings every page shows above the numbers, in plain words: a partial run (naming
    the missing folds), a smoke run, then each flag of
    :func:`loes.pipeline.report.flags.model_flags`."""
    texts = [
        (report.get("completeness") or {}).get("text"),
        (report.get("run") or {}).get("smoke_text"),
        *[flag.get("text") for flag in report.get("flags") or []],
    ]
    return [text for text in texts if text]


def tables(report: dict[str, Any]) -> list[Table]:
    """Every table of the report, in order.

    The network against each baseline (paired differences with intervals), pooled metrics per
    model, their 95% subject-bootstrap intervals, metrics per fold, mean ± SD over folds, MAE by
    true-score range, the transplant threshold as a classification, when the network is among
    the models its Bland-Altman agreement, then the worst-predicted scans and the scans set
    aside (:func:`~loes.pipeline.report.scan_lists.scan_tables`).
    """
    return [
        *_versus(report),
        _pooled(report),
        _intervals(report),
        _per_fold(report),
        _over_folds(report),
        _by_range(report),
        _threshold(report),
        *_bland_altman(report),
        *scan_tables(report),
    ]


def _bootstrap_note(report: dict[str, Any]) -> str:
    settings = report.get("bootstrap") or {}
    return (
        f"95% intervals from {settings.get('n_resamples', '?')} bootstrap resamples of the "
        f"{report['n_subjects']} subjects (all scans of a drawn subject together, seed "
        f"{settings.get('seed', '?')}): scans of one subject are not independent."
    )


def _versus(report: dict[str, Any]) -> list[Table]:
    found = comparisons(report)
    if not found:
        return []
    network = number(report["metrics"][NETWORK]["pooled"]["mae"])
    rows = [
        [c["baseline"], c["baseline_mae"], network, c["difference"], c["interval"], c["words"]]
        for c in found
    ]
    return [
        Table(
            "Network vs baselines",
            "Difference = network MAE - baseline MAE (Loes points; below 0 the network is "
            "better), with its 95% interval from a paired bootstrap: both models scored on the "
            "same resampled subjects. An interval that excludes 0 means the difference is more "
            "than the luck of which subjects were in the cohort. " + _bootstrap_note(report),
            ["baseline", "baseline MAE", "network MAE", "difference", "95% CI", "in words"],
            rows,
        )
    ]


def _pooled(report: dict[str, Any]) -> Table:
    models, metrics = report["models"], report["metrics"]
    n_repeats = report["n_repeats"]
    repeats_note = (
        f" Pooled metrics are computed over all scans of a repeat, then averaged over the "
        f"{n_repeats} repeats."
        if n_repeats > 1
        else ""
    )
    header = ["model", "pooled MAE", "fold MAE (mean ± SD)"]
    header += [METRIC_LABELS[m] for m in REGRESSION_METRICS if m != "mae"]
    header += [f"AUC @{report['threshold']:g}"]
    rows = []
    for model in models:
        pooled = metrics[model]["pooled"]
        row = [model, number(pooled["mae"])]
        row.append(mean_sd(metrics[model]["fold_mean"]["mae"], metrics[model]["fold_sd"]["mae"]))
        row += [number(pooled[m]) for m in REGRESSION_METRICS if m != "mae"]
        row += [number(pooled["roc_auc"])]
        rows.append(row)
    return Table(
        "Pooled out-of-fold metrics",
        "Every scan predicted once by a model that never saw its subject. sRMSE = RMSE / SD of "
        "the true scores (population SD): 1 is no better than predicting the mean." + repeats_note,
        header,
        rows,
    )


def _intervals(report: dict[str, Any]) -> Table:
    models, metrics = report["models"], report["metrics"]
    threshold = f" @{report['threshold']:g}"
    rows = []
    for metric in INTERVAL_METRICS:
        label = METRIC_LABELS[metric] + (threshold if metric in THRESHOLD_LABELLED else "")
        rows.append(
            [label]
            + [
                with_interval(
                    metrics[m]["pooled"][metric], metrics[m].get("pooled_ci", {}).get(metric)
                )
                for m in models
            ]
        )
    return Table(
        "How sure: pooled metrics with 95% intervals",
        _bootstrap_note(report)
        + " Spearman ρ and ROC AUC have no interval here; – marks an interval that is undefined "
        "(a metric undefined in more than 5% of the resamples).",
        ["metric", *models],
        rows,
    )


def _per_fold(report: dict[str, Any]) -> Table:
    models, metrics = report["models"], report["metrics"]
    header = ["fold", "scans", "subjects", *[f"MAE {m}" for m in models]]
    baselines = [b for b in models if b != NETWORK] if NETWORK in models else []
    header += [f"network - {b}" for b in baselines]
    header += [f"{METRIC_LABELS[m]} {models[0]}" for m in ("pearson_r", "lin_ccc")]
    by_fold = {m: {(f["repeat"], f["fold"]): f for f in metrics[m]["folds"]} for m in models}
    rows = []
    for fold in metrics[models[0]]["folds"]:
        key = (fold["repeat"], fold["fold"])
        row = [_fold_name(fold, report["n_repeats"]), str(fold["n_scans"]), str(fold["n_subjects"])]
        row += [number(by_fold[m].get(key, {}).get("mae")) for m in models]
        network = by_fold.get(NETWORK, {}).get(key, {}).get("mae")
        for baseline in baselines:
            mae = by_fold[baseline].get(key, {}).get("mae")
            row.append(signed(network - mae) if finite(network) and finite(mae) else "–")
        row += [number(fold["pearson_r"]), number(fold["lin_ccc"])]
        rows.append(row)
    return Table(
        "Per fold",
        "Fold = repeat/fold when repeated. MAE in Loes points on the fold's held-out subjects; "
        "network - baseline below 0: the network is better in that fold.",
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
    header = ["model", *[f"{range_label(label)} (n={counts[label]['n']})" for label in labels]]
    rows = [
        [m, *[number(metrics[m]["mae_by_range"][label]["mae"]) for label in labels]] for m in models
    ]
    return Table(
        "MAE by true-score range",
        "Pooled MAE of the scans whose true Loes score falls in each range; the top range starts "
        f"at the transplant threshold ({report['threshold']:g}), so it holds exactly the "
        "positive scans. A model that predicts the median does well at 0 and badly at the top.",
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
