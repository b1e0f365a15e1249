import pytest

from loes import __version__
from loes.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"loes {__version__}"


def test_models_lists_every_network_with_derived_sizes(capsys):
    assert main(["models", "--spatial-size", "176", "256", "256"]) == 0
    out = capsys.readouterr().out
    for name in ["alexnet3d", "densenet121", "regressor", "resnet18", "resnet50", "sfcn"]:
        assert name in out
    alexnet_row = next(line for line in out.splitlines() if "alexnet3d" in line)
    assert "4,096" in alexnet_row
    assert "2,652,161" not in alexnet_row  # the classifier grows with the input


def test_models_explains_inputs_too_small_for_alexnet(capsys):
    assert main(["models", "--spatial-size", "40", "40", "40"]) == 0
    assert "at least 69" in capsys.readouterr().out.replace("\n", " ").replace("│", " ")


def test_bad_in_channels_is_a_clear_error(capsys):
    assert main(["models", "--in-channels", "0"]) == 2
    assert "--in-channels must be at least 1" in capsys.readouterr().err
