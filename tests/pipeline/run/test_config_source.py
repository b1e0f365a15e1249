"""Settings that read a table, given without the table (``data.source``), are refused: loes
never trains on the synthetic cohort in place of a lab's data."""

import pytest

from loes.cli import main
from loes.errors import LoesError
from loes.pipeline.run.config_loading import load_config


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["data.images_dir=scans"], "data.images_dir is set but data.source is not"),
        (["data.format=lab"], "data.format is set but data.source is not"),
        (["data.suffix=FLAIR"], "data.suffix is set but data.source is not"),
        (
            ["data.images_dir=scans", "data.format=manifest"],
            "data.images_dir and data.format are set but data.source is not",
        ),
    ],
)
def test_table_settings_without_a_source_are_refused(overrides, named):
    with pytest.raises(LoesError) as error:
        load_config(overrides=overrides)
    message = str(error.value)
    assert message.startswith(named)
    assert "built-in synthetic cohort" in message
    assert "set data.source to your table" in message


def test_a_file_with_images_dir_and_no_source_is_refused(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("data:\n  images_dir: /data/images\n")
    with pytest.raises(LoesError, match=r"data\.images_dir is set but data\.source is not"):
        load_config(path)


def test_the_command_line_refuses_images_dir_without_source(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["cv", "--images-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "data.images_dir is set but data.source is not" in capsys.readouterr().err
    assert not out.exists()  # nothing generated, nothing written


def test_the_synthetic_cohort_and_a_source_with_table_settings_still_load(tmp_path):
    assert load_config("configs/cpu.yaml").data.source is None  # make cv
    assert load_config(overrides=["data.include_gd=true"]).data.include_gd  # synthetic gd scans
    config = load_config(overrides=[f"data.source={tmp_path}/s.csv", "data.images_dir=scans"])
    assert config.data.images_dir.endswith("scans")
    assert load_config(overrides=["data.source=x.csv", "data.suffix=FLAIR"]).data.suffix == "FLAIR"
