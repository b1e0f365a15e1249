"""``configs/own-data.yaml``, the example for a lab's own table of scores, loads and reads such
a table; apart from its data and skull stripping it is the CPU main job."""

from __future__ import annotations

import pandas as pd
import pytest

from loes.pipeline.run.config_loading import load_config
from tests.docs._blocks import REPO
from tests.docs._sandbox import write_lab_data

OWN_DATA = REPO / "configs" / "own-data.yaml"


def test_own_data_names_a_table_and_its_images_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(OWN_DATA)
    assert config.data.source == str(tmp_path / "data" / "scores.csv")  # from where loes starts
    assert config.data.images_dir == str(tmp_path / "data" / "images")
    assert config.data.format is None  # told from the source, so a BIDS folder works too
    assert config.out == "runs/own-data"


def test_own_data_is_the_main_job_on_a_table():
    own, cpu = load_config(OWN_DATA), load_config(REPO / "configs" / "cpu.yaml")
    assert own.preprocessing.skull_strip == "auto"  # whole heads from the scanner are stripped
    same = {"out": cpu.out, "data": cpu.data}
    same["preprocessing"] = own.preprocessing.model_copy(update={"skull_strip": False})
    assert own.model_copy(update=same) == cpu


def test_own_data_reads_a_labs_table_with_its_paths_overridden(tiny_manifest, tmp_path):
    from loes.pipeline.run.data import load_table

    write_lab_data(tmp_path, tiny_manifest)
    scores, images = tmp_path / "data" / "scores.csv", tmp_path / "data" / "images"
    config = load_config(OWN_DATA, [f"data.source={scores}", f"data.images_dir={images}"])
    table = load_table(config)
    written = pd.read_csv(scores, dtype={"subject": str, "session": str})
    kept = written[written["gd"] == 0]  # post-contrast scans are left out (include_gd: false)
    assert len(table) == len(kept) > 0
    assert sorted(table["subject"].unique()) == sorted(kept["subject"].unique())
    assert table["subject"].iloc[0] == "001"  # ids stay text, leading zeros kept
    assert set(table["image"]) == {str(images / name) for name in kept["image"]}
    assert table["loes_score"].tolist() == pytest.approx(kept["loes_score"].tolist())
