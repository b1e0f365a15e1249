import pytest
import torch

from loes.errors import LoesError
from loes.pipeline import load_config
from loes.pipeline.run.folder import (
    environment,
    fold_dir,
    is_finished,
    load_run_config,
    prepare_run_folder,
    run_dir_of,
)


def test_fold_folders_and_their_run(tmp_path):
    assert fold_dir(tmp_path, 0, 3, repeats=1) == tmp_path / "fold_3"
    assert fold_dir(tmp_path, 2, 3, repeats=3) == tmp_path / "repeat_2" / "fold_3"
    assert run_dir_of(tmp_path / "fold_3") == tmp_path.resolve()
    assert run_dir_of(tmp_path / "repeat_2" / "fold_3") == tmp_path.resolve()
    folder = fold_dir(tmp_path, 0, 0, repeats=1)
    folder.mkdir()
    assert not is_finished(folder)
    (folder / "metrics.json").write_text("{}")
    assert is_finished(folder)


def test_a_run_folder_keeps_its_settings_and_refuses_others(tmp_path):
    config = load_config(overrides=[f"out={tmp_path / 'run'}", "training.epochs=3"])
    run_dir = prepare_run_folder(config)
    assert load_run_config(run_dir) == config
    # where it runs and how it loads data may change
    faster = config.model_copy(update={"device": "cpu"})
    assert prepare_run_folder(faster) == run_dir
    changed = load_config(overrides=[f"out={run_dir}", "training.epochs=4", "seed=2"])
    with pytest.raises(
        LoesError, match=r"differs in seed: 0 there, 2 now; training\.epochs: 3 there, 4 now\)"
    ):
        prepare_run_folder(changed)


def test_a_run_made_before_a_setting_existed_reads_as_what_it_did(tmp_path):
    config = load_config(overrides=[f"out={tmp_path}", "training.epochs=3"])
    prepare_run_folder(config)
    saved = (tmp_path / "config.yaml").read_text()
    assert "thick_slices: 0.5" in saved
    (tmp_path / "config.yaml").write_text(saved.replace("  thick_slices: 0.5\n", ""))
    assert load_run_config(tmp_path).change.thick_slices == 0.0  # ADDED_SETTINGS
    assert load_run_config(tmp_path).change.model == "paired"  # saved, so kept
    older = config.model_copy(
        update={"change": config.change.model_copy(update={"thick_slices": 0.0})}
    )
    for resumed in (config, older):  # the paired network then trained differently
        with pytest.raises(
            LoesError, match=r"earlier loes, before it had the setting change\.thick"
        ):
            prepare_run_folder(resumed)
    (tmp_path / "config.yaml").write_text(
        saved.split("change:")[0] + "report:" + saved.split("report:")[1]
    )
    before = load_run_config(tmp_path).change  # made before the paired network
    assert (before.model, before.thick_slices) == ("subtraction", 0.0)


def test_thick_slices_do_not_decide_a_run_without_a_paired_network():
    plain = load_config(overrides=["change.model=subtraction"]).deciding_results()
    other = load_config(overrides=["change.model=subtraction", "change.thick_slices=0.9"])
    assert other.deciding_results() == plain
    paired = load_config(overrides=["change.thick_slices=0.9"]).deciding_results()
    assert paired["change"]["thick_slices"] == 0.9


def test_an_unreadable_saved_configuration_names_the_file(tmp_path):
    with pytest.raises(LoesError, match=r"holds no config\.yaml"):
        load_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(LoesError, match=r"config\.yaml is not valid YAML"):
        load_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("- a list\n")
    with pytest.raises(LoesError, match=r"config\.yaml must hold a mapping"):
        load_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("training:\n  epochs: -1\n")
    with pytest.raises(LoesError, match=r"config\.yaml: training\.epochs must be positive"):
        load_run_config(tmp_path)


def test_the_environment_record():
    record = environment(torch.device("cpu"))
    assert record["device"] == "cpu"
    assert record["gpu"] is None
    assert torch.__version__.startswith(record["packages"]["torch"])


def test_a_job_starting_beside_another_is_not_refused_for_its_temporary(tmp_path):
    """Two fold jobs start together: one has created the run folder and is writing
    config.yaml's temporary; the other must not take the folder for someone else's files."""
    from loes.pipeline.run.folder import check_run_folder

    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.yaml.0a1b2c3d.yaml").write_text("half")
    config = load_config(overrides=[f"out={run}"])
    assert check_run_folder(config) == run
    (run / "notes.txt").write_text("mine")
    with pytest.raises(LoesError, match="is not empty and holds no loes run"):
        check_run_folder(config)
