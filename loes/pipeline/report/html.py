"""``report.html``: one self-contained page (inline CSS, plots as base64 PNG, no links).

The page is rendered from the Jinja2 template ``templates/report.html.j2`` with autoescaping on;
this module only prepares what the template shows: what was run, the warnings, the headline
cards, the tables of :mod:`loes.pipeline.report.tables`, the figures of
:mod:`loes.pipeline.report.plots` and the run's configuration.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from loes.data.follow_up import has_ages
from loes.pipeline.report import follow_up_plots, plots
from loes.pipeline.report.change_text import CHANGE_TITLE, change_sentence, change_table
from loes.pipeline.report.numbers import interval_text, number
from loes.pipeline.report.tables import (
    METRIC_LABELS,
    UNDEFINED_NOTE,
    comparisons,
    headline,
    main_model,
    notices,
    tables,
    what_was_run,
)
from loes.pipeline.run.pages import package_template
from loes.pipeline.run.predictions import NETWORK

__all__ = ["render_html"]


def _cards(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline cards: the main model's pooled MAE with its interval; for each baseline the
    network's MAE minus the baseline's with its paired interval and the verdict in words (green:
    the network is better and the interval excludes 0, red: worse, grey: unclear); then sRMSE,
    Lin CCC and ROC AUC."""
    metrics, main = report["metrics"], main_model(report)
    pooled, intervals = metrics[main]["pooled"], metrics[main].get("pooled_ci", {})

    def ci(metric: str) -> str | None:
        text = interval_text(intervals.get(metric))
        return None if text == "–" else f"95% CI {text}"

    cards: list[dict[str, Any]] = [
        {
            "value": number(pooled["mae"]),
            "label": f"{main} pooled MAE (Loes points)",
            "detail": ci("mae"),
            "main": True,
        }
    ]
    classes = {"better": "good", "worse": "bad"}
    for c in comparisons(report):
        cards.append(
            {
                "value": c["difference"],
                "label": f"network - {c['baseline']} MAE ({c['baseline']}: {c['baseline_mae']})",
                "detail": None if c["interval"] == "–" else f"95% CI {c['interval']}",
                "verdict": c["words"],
                "verdict_class": classes.get(c["verdict"], "unclear"),
            }
        )
    for key in ("standardized_rmse", "lin_ccc", "roc_auc"):
        at = f" @{report['threshold']:g}" if key == "roc_auc" else ""
        cards.append(
            {"value": number(pooled[key]), "label": METRIC_LABELS[key] + at, "detail": ci(key)}
        )
    defaults = {"main": False, "detail": None, "verdict": None, "verdict_class": None}
    return [{**defaults, **card} for card in cards]


def _image(figure: Figure, alt: str, caption: str) -> dict[str, str]:
    data = base64.b64encode(plots.figure_to_png(figure)).decode("ascii")
    return {"src": f"data:image/png;base64,{data}", "alt": alt, "caption": caption}


def _figures(
    report: dict[str, Any],
    predictions: pd.DataFrame,
    histories: dict[tuple[int, int], pd.DataFrame],
) -> dict[str, Any]:
    """The plots as images: ``grid`` (side by side), ``full_width`` and ``trajectories``."""
    threshold = report["threshold"]
    repeat_note = " (first repeat)" if report["n_repeats"] > 1 else ""
    specs: list[tuple[Callable[[], Figure], str, str]] = [
        (
            lambda: plots.plot_predicted_vs_true(predictions, threshold),
            "predicted vs true",
            f"Out-of-fold predictions{repeat_note}, one colour per fold. Points on the grey "
            f"identity line are exact; red dotted lines mark Loes {threshold:g}: points in the "
            "upper-left and lower-right quadrants are misclassified for transplant eligibility.",
        ),
        (
            lambda: plots.plot_bland_altman(predictions),
            "Bland-Altman",
            f"Prediction minus truth against their mean{repeat_note}, one colour per fold. The "
            "solid line is the bias; "
            "95% of differences fall between the dashed limits of agreement. A downward slope "
            "means high scores are under-predicted (regression to the mean).",
        ),
        (
            lambda: plots.plot_fold_mae(report),
            "MAE per fold",
            "MAE of each model on each test fold; dashed lines are the pooled MAEs. The network "
            "should beat every baseline in every fold, not only on average.",
        ),
        (
            lambda: plots.plot_error_by_range(report),
            "error by score range",
            "Pooled MAE within each range of the true score (n = scans per range).",
        ),
    ]
    if histories:
        specs.append(
            (
                lambda: plots.plot_learning_curves(histories),
                "learning curves",
                "Training loss and MAE on each fold's inner validation subjects (never the test "
                "fold) by epoch; the dot marks each fold's lowest validation MAE, the legend "
                "below names every fold. "
                "A rising validation curve with a falling training loss means overfitting.",
            )
        )
    grid, full_width = [], []
    for make, alt, caption in specs:
        figure = make()
        wide = figure.get_figwidth() > 7 or alt == "learning curves"
        (full_width if wide else grid).append(_image(figure, alt, caption))
    trajectory = follow_up_plots.plot_trajectories(predictions, threshold=threshold)
    if trajectory is not None:
        by_age = has_ages(predictions)
        axis_note = (
            "against age at the scan"
            if by_age
            else "in session order (predictions.csv holds no age, so not against age)"
        )
        trajectory = _image(
            trajectory,
            "trajectories",
            f"True (black) and predicted (blue) scores of each subject{repeat_note}, {axis_note}, "
            "for the subjects with the most sessions. A good model follows the rise of the disease "
            "within a subject, not just the cohort average.",
        )
    return {"grid": grid, "full_width": full_width, "trajectories": trajectory}


def _change(
    report: dict[str, Any], predictions: pd.DataFrame, paired: pd.DataFrame | None
) -> dict[str, Any]:
    """The change section: its title, the verdict in one sentence, the table (``None`` without
    pairs) and the plot of predicted against true change (``None`` without pairs)."""
    change = report.get("change")
    table = change_table(change)
    figure = (
        None
        if table is None
        else follow_up_plots.plot_change(predictions, change["progression"], paired)
    )
    repeat_note = " (first repeat)" if report["n_repeats"] > 1 else ""
    image = None
    if figure is not None:
        p = f"{change['progression']:g}"
        image = _image(
            figure,
            "predicted vs true change",
            f"Each point is a pair of consecutive sessions of one subject{repeat_note}: the "
            "true change against the model's ("
            + (
                "the network's: the paired network's, read from the two sessions registered "
                "and subtracted; subtraction's: the difference of the network's two "
                "out-of-fold scores"
                if change.get("method") == "paired"
                else "the difference of its two out-of-fold predictions"
            )
            + f"). Points on the grey identity line are exact; red dotted lines mark "
            f"a rise of {p}: points right of the vertical one progressed; the lower-right "
            "quadrant holds the progressions the model missed, the upper-left its false alarms.",
        )
    return {
        "title": CHANGE_TITLE,
        "sentence": change_sentence(change),
        "table": table,
        "figure": image,
    }


def render_html(
    report: dict[str, Any],
    predictions: pd.DataFrame,
    histories: dict[tuple[int, int], pd.DataFrame] | None = None,
    changes: pd.DataFrame | None = None,
) -> str:
    """The text of ``report.html``: what was run, the warnings, headline cards, every table, the
    plots, the change between sessions (verdict, table and plot) and the configuration.

    ``report`` is the dict written to ``report.json``; ``predictions`` the long table it was
    computed from (``repeat, fold, subject, session, loes_score, predicted, model``; Loes
    points); ``histories`` maps ``(repeat, fold)`` to a fold's ``history.csv`` (``epoch,
    train_loss, val_mae, lr``): without them the page has no learning curves; ``changes`` the
    paired network's out-of-fold changes (:func:`~loes.pipeline.run.collect.collect_changes`),
    or None. The page is one
    file with inline CSS and base64 PNG plots: no scripts and no external links. Every value is
    HTML-escaped. The configuration is shown as given, with the values in effect
    (``report["run"]["effective"]``) above it.
    """
    text, counts = headline(report)
    config = report.get("config")
    return package_template("loes.pipeline.report", "report.html.j2").render(
        run=what_was_run(report),
        notices=notices(report),
        counts=counts,
        created=str(report.get("created", "")),
        loes_version=str(report.get("loes_version", "")),
        cards=_cards(report),
        headline=text,
        tables=tables(report),
        network=NETWORK,
        figures=_figures(report, predictions, histories or {}),
        has_histories=bool(histories),
        change=_change(report, predictions, changes),
        undefined_note=UNDEFINED_NOTE,
        config=None if config is None else json.dumps(config, indent=2, default=str),
        effective=[
            f"{key} {v if isinstance(v := value['effective'], str) else json.dumps(v)} "
            f"({value['why']})"
            for key, value in ((report.get("run") or {}).get("effective") or {}).items()
        ],
    )
