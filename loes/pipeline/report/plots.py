"""The report's figures, drawn with matplotlib's object API (no pyplot, no display needed).

Each ``plot_*`` function returns a :class:`matplotlib.figure.Figure` that belongs to no pyplot
window and leaves matplotlib's backend alone (importing loes never calls ``matplotlib.use``);
:func:`figure_to_png` renders it to PNG bytes. Predictions come as the long table of
:func:`loes.pipeline.report.summary.summarize` (``repeat, fold, subject, session, loes_score,
predicted, model``; scores in Loes points); where one repeat is plotted it is the first. The
``report`` arguments are the dict written to ``report.json``. Numbers on the figures are
written as in the tables (:func:`~loes.pipeline.report.tables.number`: never ``-0.00``).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from loes.pipeline.report.numbers import number, range_label, signed
from loes.pipeline.run.metrics import TRANSPLANT_THRESHOLD, bland_altman
from loes.pipeline.run.predictions import NETWORK

__all__ = [
    "figure_to_png",
    "model_colours",
    "plot_bland_altman",
    "plot_error_by_range",
    "plot_fold_mae",
    "plot_learning_curves",
    "plot_predicted_vs_true",
]

NETWORK_COLOUR = "#1f4e9c"
BASELINE_COLOURS = ("#9aa5b1", "#e8a33d", "#6aa36f", "#b56576", "#7d6bb0")
THRESHOLD_STYLE = {"color": "#c0392b", "linestyle": ":", "linewidth": 1.2}
STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "font.size": 9.5,
    "legend.frameon": False,
    "figure.dpi": 100,
}


def model_colours(models: list[str]) -> dict[str, str]:
    """``{model: colour}``: the network in blue, baselines in muted colours in the order given."""
    baselines = [m for m in models if m != NETWORK]
    colours = {m: BASELINE_COLOURS[i % len(BASELINE_COLOURS)] for i, m in enumerate(baselines)}
    if NETWORK in models:
        colours[NETWORK] = NETWORK_COLOUR
    return colours


def figure_to_png(figure: Figure, dpi: int = 110) -> bytes:
    """Render ``figure`` to PNG bytes at ``dpi`` dots per inch, cropped to its content."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def styled_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any
) -> tuple[Figure, Any]:
    """A new figure and its axes (as ``Figure.subplots`` returns them); call inside STYLE."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(nrows, ncols, **kwargs)


def first_repeat(predictions: pd.DataFrame, model: str) -> pd.DataFrame:
    rows = predictions[predictions["model"] == model]
    return rows[rows["repeat"] == rows["repeat"].min()]


def repeat_note(predictions: pd.DataFrame, rows: pd.DataFrame) -> str:
    return f", repeat {rows['repeat'].min()}" if predictions["repeat"].nunique() > 1 else ""


def main_model(predictions: pd.DataFrame) -> str:
    models = set(predictions["model"])
    return NETWORK if NETWORK in models else sorted(models)[0]


def _fold_label(repeat: int, fold: int, n_repeats: int) -> str:
    return f"r{repeat} f{fold}" if n_repeats > 1 else f"fold {fold}"


def _limits(*arrays: np.ndarray, threshold: float = TRANSPLANT_THRESHOLD) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, float) for a in arrays])
    low, high = min(0.0, float(values.min())), max(threshold + 1, float(values.max()))
    pad = 0.04 * (high - low)
    return low - pad, high + pad


def _none_to_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def plot_predicted_vs_true(
    predictions: pd.DataFrame, threshold: float = TRANSPLANT_THRESHOLD
) -> Figure:
    """The main model's out-of-fold predictions against the truth, one colour per fold.

    The main model is the network, else the first model alphabetically; first repeat only.
    Draws the identity line and the transplant ``threshold`` (Loes points) on both axes.
    """
    model = main_model(predictions)
    rows = first_repeat(predictions, model)
    with rc_context(STYLE):
        figure, axis = styled_figure(figsize=(6.2, 5.6))
        limits = _limits(rows["loes_score"], rows["predicted"], threshold=threshold)
        axis.plot(limits, limits, color="#555555", linewidth=1, label="identity")
        axis.axvline(threshold, **THRESHOLD_STYLE)
        axis.axhline(threshold, **THRESHOLD_STYLE, label=f"Loes {threshold:g} (transplant)")
        _scatter_by_fold(axis, rows, lambda t, p: (t, p), size=26, alpha=0.8)
        axis.set(xlim=limits, ylim=limits, xlabel="true Loes score", ylabel="predicted Loes score")
        axis.set_aspect("equal")
        axis.set_title(f"Predicted vs true ({model}{repeat_note(predictions, rows)})")
        axis.legend(loc="upper left", fontsize=8)
    return figure


def _scatter_by_fold(axis, rows: pd.DataFrame, place, size: float, alpha: float) -> None:
    """Scatter ``rows`` one colour per fold (tab10, in fold order), each point at
    ``place(true, predicted)`` (arrays of Loes points), labelled "fold K" for the legend."""
    colours = colormaps["tab10"]
    for i, (fold, fold_rows) in enumerate(rows.groupby("fold", sort=True)):
        x, y = place(
            fold_rows["loes_score"].to_numpy(float), fold_rows["predicted"].to_numpy(float)
        )
        axis.scatter(
            x,
            y,
            s=size,
            alpha=alpha,
            color=colours(i % 10),
            edgecolor="white",
            linewidth=0.5,
            label=f"fold {fold}",
        )


def _spread_labels(values: list[float], gap: float) -> list[float]:
    """Label heights near ``values`` (same order) at least ``gap`` apart, keeping their order."""
    order = np.argsort(values)
    placed = np.asarray(values, float)[order]
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    shift = (placed - np.asarray(values, float)[order]).mean()  # centre the block on the lines
    result = np.empty(len(values))
    result[order] = placed - shift
    return result.tolist()


def plot_bland_altman(predictions: pd.DataFrame) -> Figure:
    """The main model's difference (predicted - true) against the mean of both (first repeat).

    Points are coloured by fold (the colours of :func:`plot_predicted_vs_true`). Draws the bias
    and the 95% limits of agreement (bias ± 1.96 SD), all in Loes points, labelled in the right
    margin, outside the data.
    """
    model = main_model(predictions)
    rows = first_repeat(predictions, model)
    true, pred = rows["loes_score"].to_numpy(float), rows["predicted"].to_numpy(float)
    agreement = bland_altman(true, pred)
    with rc_context(STYLE):
        figure, axis = styled_figure(figsize=(6.2, 4.6))
        _scatter_by_fold(axis, rows, lambda t, p: ((t + p) / 2, p - t), size=22, alpha=0.75)
        axis.axhline(0, color="#555555", linewidth=0.8)
        lines = [
            (name, value, style)
            for name, value, style in (
                ("bias", agreement["bias"], "-"),
                ("+1.96 SD", agreement["loa_upper"], "--"),
                ("-1.96 SD", agreement["loa_lower"], "--"),
            )
            if np.isfinite(value)
        ]
        for _, value, style in lines:
            axis.axhline(value, color="#c0392b", linestyle=style, linewidth=1.2)
        low, high = axis.get_ylim()
        heights = _spread_labels([value for _, value, _ in lines], gap=0.07 * (high - low))
        for (name, value, _), height in zip(lines, heights, strict=True):
            axis.annotate(
                f"{name} {signed(value)}",
                xy=(1.0, value),
                xycoords=("axes fraction", "data"),
                xytext=(1.02, height),
                textcoords=("axes fraction", "data"),
                ha="left",
                va="center",
                fontsize=8,
                color="#c0392b",
                annotation_clip=False,
            )
        axis.set_ylim(low, high)
        axis.set(
            xlabel="mean of true and predicted score",
            ylabel="predicted - true (Loes points)",
            title=f"Bland-Altman ({model}{repeat_note(predictions, rows)})",
        )
        n_folds = rows["fold"].nunique()
        axis.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(n_folds, 6), fontsize=8
        )
    return figure


def plot_fold_mae(report: dict[str, Any]) -> Figure:
    """Per-fold MAE of every model side by side (grouped bars), pooled MAEs as dashed lines.

    The figure widens (up to 16 inches) when there are many folds times models.
    """
    models = report["models"]
    colours = model_colours(models)
    folds = [(f["repeat"], f["fold"]) for f in report["metrics"][models[0]]["folds"]]
    width = 0.8 / len(models)
    bars = len(folds) * len(models)
    with rc_context(STYLE):
        figure, axis = styled_figure(
            figsize=(6.2 if bars <= 18 else min(16.0, 0.2 * bars + 2), 4.2)
        )
        x = np.arange(len(folds))
        for i, model in enumerate(models):
            by_fold = {
                (f["repeat"], f["fold"]): f["mae"] for f in report["metrics"][model]["folds"]
            }
            values = [_none_to_nan(by_fold.get(key)) for key in folds]
            axis.bar(x + (i - (len(models) - 1) / 2) * width, values, width, color=colours[model])
            pooled = _none_to_nan(report["metrics"][model]["pooled"]["mae"])
            axis.axhline(pooled, color=colours[model], linestyle="--", linewidth=1)
            axis.bar(
                [np.nan], [np.nan], color=colours[model], label=f"{model} (pooled {number(pooled)})"
            )
        n_repeats = report["n_repeats"]
        axis.set_xticks(x, [_fold_label(r, f, n_repeats) for r, f in folds])
        axis.set(ylabel="MAE (Loes points)", title="MAE per fold (dashed: pooled)")
        axis.grid(axis="x", visible=False)
        axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(models))
    return figure


def plot_learning_curves(histories: dict[tuple[int, int], pd.DataFrame]) -> Figure:
    """Training loss and inner-validation MAE by epoch, one line per fold; a dot at the best.

    ``histories`` maps ``(repeat, fold)`` to a fold's ``history.csv`` (columns ``epoch,
    train_loss, val_mae, lr``; MAE in Loes points); a missing column leaves its panel empty.
    Epoch ticks are whole numbers; the legend sits below both panels, so it hides no line.
    """
    keyed = sorted(histories.items(), key=lambda item: item[0])
    n_repeats = len({repeat for (repeat, _), _ in keyed})
    with rc_context(STYLE):
        figure, axes = styled_figure(1, 2, figsize=(11, 4))
        colours = colormaps["tab10"]
        for i, ((repeat, fold), history) in enumerate(keyed):
            label = _fold_label(repeat, fold, n_repeats)
            colour = colours(i % 10)
            for axis, column in zip(axes, ("train_loss", "val_mae"), strict=True):
                if column in history and "epoch" in history:
                    axis.plot(
                        history["epoch"],
                        history[column],
                        color=colour,
                        label=label,
                        lw=1.4,
                        marker="o" if len(history) == 1 else None,
                    )
            if "val_mae" in history and history["val_mae"].notna().any():
                best = history["val_mae"].idxmin()
                axes[1].scatter(
                    history.loc[best, "epoch"],
                    history.loc[best, "val_mae"],
                    color=colour,
                    s=24,
                    zorder=3,
                )
        axes[0].set(xlabel="epoch", ylabel="training loss", title="Training loss")
        axes[1].set(
            xlabel="epoch", ylabel="MAE (Loes points)", title="Inner-validation MAE (dot: best)"
        )
        for axis in axes:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = next(
            (a.get_legend_handles_labels() for a in axes if a.get_legend_handles_labels()[0]),
            ([], []),
        )
        if handles:
            figure.legend(
                handles,
                labels,
                loc="upper center",
                bbox_to_anchor=(0.5, 0.0),
                ncol=min(len(handles), 8),
                fontsize=8,
            )
        figure.tight_layout()
    return figure


def plot_error_by_range(report: dict[str, Any]) -> Figure:
    """Pooled MAE within each true-score range, every model side by side, with scan counts."""
    models, labels = report["models"], report["score_ranges"]
    colours = model_colours(models)
    width = 0.8 / len(models)
    with rc_context(STYLE):
        figure, axis = styled_figure(figsize=(6.2, 4.2))
        x = np.arange(len(labels))
        for i, model in enumerate(models):
            ranges = report["metrics"][model]["mae_by_range"]
            values = [_none_to_nan(ranges[label]["mae"]) for label in labels]
            axis.bar(
                x + (i - (len(models) - 1) / 2) * width,
                values,
                width,
                color=colours[model],
                label=model,
            )
        counts = report["metrics"][models[0]]["mae_by_range"]
        axis.set_xticks(x, [f"{range_label(label)}\n(n={counts[label]['n']})" for label in labels])
        axis.set(
            xlabel="true Loes score range", ylabel="MAE (Loes points)", title="Error by score range"
        )
        axis.grid(axis="x", visible=False)
        axis.legend(loc="upper left")
    return figure
