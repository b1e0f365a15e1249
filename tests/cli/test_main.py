import subprocess
import sys


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
    for command in ("cv", "models", "report", "synth", "validate"):
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
