import os
import subprocess
import sys

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from loes.data.follow_up import has_ages
from loes.pipeline.report import follow_up_plots, plots
from loes.pipeline.report.summary import summarize

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_importing_and_plotting_leaves_the_matplotlib_backend_alone():
    """A notebook's backend survives `import loes.pipeline.report` and drawing a report."""
    probe = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"  # the user's choice, as a notebook would make it
        "calls = []\n"
        "matplotlib.use = lambda *args, **kwargs: calls.append(args)\n"
        "import pandas as pd\n"
        "import loes.pipeline.report\n"
        "from loes.pipeline.report import plots\n"
        "history = pd.DataFrame({'epoch': [1, 2], 'train_loss': [2.0, 1], 'val_mae': [3.0, 2]})\n"
        "png = plots.figure_to_png(plots.plot_learning_curves({(0, 0): history}))\n"
        "print(matplotlib.get_backend(), calls, png[:4] == b'\\x89PNG')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "svg [] True"


def test_every_plot_is_a_figure_that_renders_to_png(written, make_history):
    _, table, report = written
    figures = [
        plots.plot_predicted_vs_true(table),
        plots.plot_bland_altman(table),
        plots.plot_fold_mae(report),
        plots.plot_error_by_range(report),
        plots.plot_learning_curves({(r, f): make_history(f) for r in range(2) for f in range(3)}),
        follow_up_plots.plot_trajectories(table),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        assert plots.figure_to_png(figure).startswith(PNG)


def test_trajectories_need_a_subject_with_several_sessions(written):
    _, table, _ = written
    first_sessions = table.drop_duplicates(["repeat", "subject", "model"])
    assert follow_up_plots.plot_trajectories(first_sessions) is None


def test_many_folds_widen_the_fold_plot(synthetic_predictions):
    narrow = plots.plot_fold_mae(summarize(synthetic_predictions(repeats=1, folds=3)))
    wide = plots.plot_fold_mae(summarize(synthetic_predictions(repeats=2, folds=6)))
    assert narrow.get_figwidth() == pytest.approx(6.2)
    assert wide.get_figwidth() > 7  # shown full width in report.html


def test_model_colours_put_the_network_in_blue():
    colours = plots.model_colours(["network", "median", "ridge"])
    assert colours["network"] == plots.NETWORK_COLOUR
    assert len(set(colours.values())) == 3


def _drawn(figure):
    """``figure`` drawn on an Agg canvas of its own, so text and legends have their extents."""
    FigureCanvasAgg(figure).draw()
    return figure.canvas.get_renderer()


def test_learning_curves_have_whole_epochs_and_a_legend_off_the_lines(make_history):
    histories = {(r, f): make_history(3 * r + f, epochs=5) for r in range(2) for f in range(3)}
    figure = plots.plot_learning_curves(histories)
    renderer = _drawn(figure)
    for axis in figure.axes:
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert ticks
        assert all(float(t).is_integer() for t in ticks), ticks
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "r0 f0",
        "r0 f1",
        "r0 f2",
        "r1 f0",
        "r1 f1",
        "r1 f2",
    ]
    box = legend.get_window_extent(renderer)
    for axis in figure.axes:
        assert not box.overlaps(axis.get_window_extent(renderer))


def test_bland_altman_colours_folds_and_labels_its_lines_off_the_data(written):
    _, table, _ = written
    figure = plots.plot_bland_altman(table)
    renderer = _drawn(figure)
    (axis,) = figure.axes
    first = table[(table["model"] == "network") & (table["repeat"] == 0)]
    assert len(axis.collections) == first["fold"].nunique()
    colours = {tuple(c.get_facecolor()[0][:3]) for c in axis.collections}
    assert len(colours) == len(axis.collections)
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["fold 0", "fold 1", "fold 2"]
    frame = axis.get_window_extent(renderer)
    boxes = [text.get_window_extent(renderer) for text in axis.texts]
    assert len(boxes) == 3
    for i, box in enumerate(boxes):
        assert box.x0 >= frame.x1  # in the right margin, beside the data, never on it
        assert not any(box.overlaps(other) for other in boxes[i + 1 :])


def test_trajectories_are_against_age_when_the_table_has_ages(written):
    _, table, _ = written
    without = follow_up_plots.plot_trajectories(table)
    assert without.axes[-1].get_xlabel() in ("session (in order)", "")
    assert "by session" in without._suptitle.get_text()
    aged = table.assign(age=7.0 + table["session"].str[-2:].astype(int) * 1.5)
    assert has_ages(aged)
    figure = follow_up_plots.plot_trajectories(aged)
    assert "against age" in figure._suptitle.get_text()
    labels = {axis.get_xlabel() for axis in figure.axes if axis.get_visible()}
    assert "age (years)" in labels
    first = figure.axes[0]
    subject = first.get_title()
    ages = sorted(aged[(aged["subject"] == subject) & (aged["repeat"] == 0)]["age"].unique())
    assert list(first.lines[1].get_xdata()) == ages  # lines[0] is the threshold
