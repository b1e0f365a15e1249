import subprocess
import sys

import pytest


def test_help_lists_every_command_without_importing_torch():
    """`loes --help` and argument errors stay instant: heavy imports wait for `run`."""
    probe = (
        "import sys\n"
        "from loes.cli import build_parser\n"
        "help = build_parser().format_help()\n"
        "print(sorted(m for m in ('torch', 'monai', 'sklearn', 'nilearn') if m in sys.modules))\n"
        "print(help)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    heavy, help_text = out.split("\n", 1)
    assert heavy == "[]"
    for command in ("cv", "export", "models", "predict", "report", "slurm", "synth", "validate"):
        assert command in help_text


def test_settings_may_follow_the_flags(tmp_path, capsys):
    from loes.cli import main

    out = tmp_path / "run"
    assert main(["cv", "data.csv", "--out", str(out), "training.epochs=0", "cv.folds=3"]) == 2
    assert "training.epochs must be positive" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_flags_are_still_refused(capsys):
    import pytest

    from loes.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["cv", "data.csv", "--epoch", "3"])  # a typo, not an abbreviation of --epochs
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --epoch 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", "data.csv", "training.epochs=3"])  # validate takes no settings


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["cv", "data.csv", "--epochs", "1", "--bogus"], "usage: loes cv [-h]"),
        (["validate", "data.csv", "--bogus"], "usage: loes validate [-h]"),
        (["validate", "data.csv", "training.epochs=3"], "usage: loes validate [-h]"),
    ],
)
def test_unknown_arguments_print_the_subcommands_usage(argv, usage, capsys):
    from loes.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert f"loes {argv[0]}: error: unrecognized arguments: {argv[-1]}" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["cv", "data.csv", "--epochs", "1", "training.lr=-1"],
        ["cv", "--epochs", "1", "data.csv", "training.lr=-1"],
        ["cv", "training.lr=-1", "--epochs", "1"],
        ["cv", "--epochs", "1", "training.lr=-1", "data.csv"],
        ["cv", "training.lr=-1", "--epochs", "1", "data.csv", "--folds", "2"],
    ],
)
def test_settings_are_read_wherever_they_stand(argv, capsys):
    from loes.cli import main

    assert main(argv) == 2
    assert capsys.readouterr().err == "loes cv: error: training.lr must be positive, got -1.\n"


def test_cv_takes_one_source(capsys):
    from loes.cli import main

    assert main(["cv", "a.csv", "training.lr=1e-3", "b.csv"]) == 2
    assert capsys.readouterr().err == "loes cv: error: one SOURCE at most, got 2: a.csv b.csv.\n"
