import os
import subprocess
import sys

import pytest
from matplotlib.figure import Figure

from loes.pipeline.metrics import summarize
from loes.pipeline.report import plots

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
        plots.plot_trajectories(table),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        assert plots.figure_to_png(figure).startswith(PNG)


def test_trajectories_need_a_subject_with_several_sessions(written):
    _, table, _ = written
    first_sessions = table.drop_duplicates(["repeat", "subject", "model"])
    assert plots.plot_trajectories(first_sessions) is None


def test_many_folds_widen_the_fold_plot(synthetic_predictions):
    narrow = plots.plot_fold_mae(summarize(synthetic_predictions(repeats=1, folds=3)))
    wide = plots.plot_fold_mae(summarize(synthetic_predictions(repeats=2, folds=6)))
    assert narrow.get_figwidth() == pytest.approx(6.2)
    assert wide.get_figwidth() > 7  # shown full width in report.html


def test_model_colours_put_the_network_in_blue():
    colours = plots.model_colours(["network", "median", "ridge"])
    assert colours["network"] == plots.NETWORK_COLOUR
    assert len(set(colours.values())) == 3
