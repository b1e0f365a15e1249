"""The follow-up plots: each subject's true and predicted scores over time, and predicted
against true change between consecutive sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from loes.data.follow_up import PROGRESSION, has_ages, in_time_order, session_key
from loes.pipeline.report.change import SUBTRACTION, change_pairs
from loes.pipeline.report.plots import (
    NETWORK_COLOUR,
    STYLE,
    THRESHOLD_STYLE,
    first_repeat,
    main_model,
    model_colours,
    repeat_note,
    styled_figure,
)
from loes.pipeline.run.metrics import TRANSPLANT_THRESHOLD
from loes.pipeline.run.predictions import NETWORK, model_order

__all__ = ["plot_change", "plot_trajectories"]


def plot_trajectories(
    predictions: pd.DataFrame, max_subjects: int = 12, threshold: float = TRANSPLANT_THRESHOLD
) -> Figure | None:
    """True (black) and predicted (blue) score of each subject over time, one panel per subject.

    The x axis is the age at the scan in years when ``predictions`` has an ``age`` for every
    scan (:func:`has_ages`), else the sessions in natural order (``session-2`` before
    ``session-10``). Only subjects with several sessions (first repeat), those with the most
    sessions first, at most ``max_subjects``. Returns ``None`` when no subject has more than one
    session.
    """
    model = main_model(predictions)
    rows = first_repeat(predictions, model)
    counts = rows.groupby("subject")["session"].nunique()
    subjects = counts[counts > 1].sort_values(ascending=False, kind="stable").index[:max_subjects]
    if len(subjects) == 0:
        return None
    by_age = has_ages(predictions)
    subjects = sorted(subjects, key=session_key)
    columns = min(4, len(subjects))
    n_rows = -(-len(subjects) // columns)
    with rc_context(STYLE):
        figure, axes = styled_figure(
            n_rows, columns, figsize=(2.9 * columns, 2.3 * n_rows + 0.4), sharey=True, squeeze=False
        )
        top = max(float(rows["loes_score"].max()), float(rows["predicted"].max()), threshold + 1)
        for axis, subject in zip(axes.flat, subjects, strict=False):
            subject_rows = rows[rows["subject"] == subject]
            subject_rows = in_time_order(subject_rows)
            if by_age:
                x = subject_rows["age"].to_numpy(float)
            else:
                x = np.arange(1, len(subject_rows) + 1)
                axis.set_xticks(x)
            axis.axhline(threshold, **THRESHOLD_STYLE)
            axis.plot(
                x, subject_rows["loes_score"], "o-", color="#222222", ms=4, lw=1.4, label="true"
            )
            axis.plot(
                x,
                subject_rows["predicted"],
                "s--",
                color=NETWORK_COLOUR,
                ms=4,
                lw=1.4,
                label=model,
            )
            axis.set_title(str(subject), fontsize=9)
            axis.set_ylim(min(0, float(rows["predicted"].min())) - 0.5, top + 1)
        for axis in axes.flat[len(subjects) :]:
            axis.set_visible(False)
        for axis in axes[:, 0]:
            axis.set_ylabel("Loes score")
        for axis in axes[-1, :]:
            axis.set_xlabel("age (years)" if by_age else "session (in order)")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="upper right", ncol=2, bbox_to_anchor=(1.0, 1.0))
        title = "against age" if by_age else "by session"
        figure.suptitle(
            f"Trajectories of subjects with several sessions ({title})",
            fontweight="bold",
            x=0.02,
            ha="left",
        )
        figure.tight_layout()
    return figure


def _padded(*arrays) -> tuple[float, float]:
    """Axis limits that hold every finite value of ``arrays``, padded by 6% of their range."""
    values = np.concatenate([np.asarray(a, float) for a in arrays])
    values = values[np.isfinite(values)]
    pad = 0.06 * (values.max() - values.min())
    return float(values.min()) - pad, float(values.max()) + pad


def plot_change(
    predictions: pd.DataFrame,
    progression: float = PROGRESSION,
    paired: pd.DataFrame | None = None,
) -> Figure | None:
    """Predicted against true change between consecutive sessions, one panel per model.

    Pairs come from :func:`loes.pipeline.report.change.change_pairs` (first repeat; with the
    paired network's changes ``paired``, the network's panel is its change and a
    ``subtraction`` panel the difference of the network's scores); a change is the later
    session's score minus the earlier's, in Loes points. Panels: the network, then each
    baseline whose change is not 0 on every pair (the median baseline's always is).
    Each panel draws the identity line and the ``progression`` rise on both axes: points
    right of the vertical line progressed, points above the horizontal one are called
    progression, so the lower-right quadrant holds the missed progressions and the upper-left
    the false alarms. Returns ``None`` when no subject has two sessions.
    """
    pairs = change_pairs(predictions, paired).pairs
    pairs = pairs[pairs["repeat"] == pairs["repeat"].min()] if len(pairs) else pairs
    models = [
        c[len("change_") :]
        for c in pairs.columns
        if c.startswith("change_") and pairs[c].notna().any() and (pairs[c] != 0).any()
    ]
    models = sorted(models, key=lambda m: (m != NETWORK, m != SUBTRACTION, m))
    if pairs.empty or not models:
        return None
    colours = model_colours(model_order(predictions["model"].unique()))  # as in every figure
    colours[SUBTRACTION] = colours.get(SUBTRACTION, "#7f7f7f")
    pairs = pairs.dropna(subset=[f"change_{m}" for m in models])
    true = pairs["true_change"].to_numpy(float)
    predicted = [pairs[f"change_{m}"].to_numpy(float) for m in models]
    x_limits = _padded(true, [0.0, 2 * progression])
    y_limits = _padded(*predicted, [0.0, 2 * progression])
    with rc_context(STYLE):
        figure, axes = styled_figure(
            1, len(models), figsize=(4.6 * len(models), 4.4), squeeze=False, sharey=True
        )
        for axis, model, change in zip(axes[0], models, predicted, strict=True):
            ends = (min(x_limits[0], y_limits[0]), max(x_limits[1], y_limits[1]))
            axis.plot(ends, ends, color="#555555", linewidth=1, label="identity")
            axis.axvline(progression, **THRESHOLD_STYLE)
            axis.axhline(progression, **THRESHOLD_STYLE, label=f"rise of {progression:g}")
            axis.scatter(
                true,
                change,
                s=24,
                alpha=0.6,
                color=colours[model],
                edgecolor="white",
                linewidth=0.5,
                label=f"{model} ({len(change)} pairs)",
            )
            axis.set(xlim=x_limits, ylim=y_limits, xlabel="true change (Loes points)")
            axis.set_title(f"Change: {model}{repeat_note(predictions, pairs)}")
        axes[0, 0].set_ylabel("predicted change (Loes points)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        for axis in axes[0, 1:]:
            more = axis.get_legend_handles_labels()
            handles, labels = handles + more[0][-1:], labels + more[1][-1:]
        figure.tight_layout()
        figure.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=len(handles),
            fontsize=8,
        )
    return figure
