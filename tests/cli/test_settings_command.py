"""``loes settings`` lists every field of the configuration model with its default, unit and
allowed values."""

import pytest

from loes.cli import main
from loes.cli.settings import settings_rows
from loes.pipeline.run.config import Config, CrossValidationConfig


def _dotted_fields(model, prefix=""):
    names = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
            names += _dotted_fields(field.annotation, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def test_every_setting_of_the_model_is_listed_once_in_declaration_order(capsys):
    assert main(["settings"]) == 0
    text = capsys.readouterr().out
    listed = [line.split(" = ")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert listed == _dotted_fields(Config)
    assert len(listed) > 50


def test_a_setting_shows_its_default_unit_allowed_values_and_meaning(capsys):
    assert main(["settings", "preprocessing.pixdim", "training.loss", "report"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "preprocessing.pixdim = [2.0, 2.0, 2.0]  (mm; 3 numbers, each positive, or one number "
        "for all)"
    )
    assert lines[1] == "    Voxel size in mm the scans are resampled to."
    assert lines[2] == "training.loss = \"huber\"  (one of 'mse', 'l1', 'huber')"
    assert lines[4].startswith(
        "report.threshold = 9.0  (Loes points; a number, between 0 and 34 in steps of 0.5)"
    )


def test_the_defaults_shown_are_the_models():
    rows = {row["name"]: row for row in settings_rows()}
    assert rows["training.epochs"]["default"] == str(Config().training.epochs)
    assert rows["data.source"]["default"] == "null"
    assert rows["data.source"]["allowed"] == "text or null"
    assert rows["preprocessing.spatial_size"]["allowed"] == "3 whole numbers, each positive"
    assert rows["preprocessing.spatial_size"]["unit"] == "voxels"
    assert rows["cv.val_fraction"]["allowed"] == "a number, between 0 and 1 (exclusive)"
    assert rows["model.dropout"]["allowed"] == "a number, between 0 and 1 or null"
    assert rows["preprocessing.skull_strip"]["allowed"] == "one of false, true, 'auto'"
    assert all(row["description"] for row in rows.values())


def test_markdown_is_one_table_row_per_setting(capsys):
    assert main(["settings", "--markdown", "cv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| setting | default | unit | allowed | meaning |"
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        f"| `cv.{name}`" for name in CrossValidationConfig.model_fields
    ]


def test_an_unknown_section_names_the_sections(capsys):
    assert main(["settings", "trainig"]) == 2
    err = capsys.readouterr().err
    assert "no setting or section 'trainig'" in err
    assert "augmentation, change, cv, data, model, preprocessing, report, training" in err


@pytest.mark.parametrize("command", ["cv", "slurm"])
def test_commands_taking_settings_point_to_loes_settings(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "every key=value setting, with its default, unit and allowed values" in (
        capsys.readouterr().out
    )


def test_loes_help_lists_the_settings_command():
    from loes.cli import build_parser

    assert "list every setting with its default, unit and allowed values" in (
        build_parser().format_help()
    )
