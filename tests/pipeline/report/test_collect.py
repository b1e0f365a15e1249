import pandas as pd
import pytest

from loes.errors import LoesError
from loes.pipeline.report import collect_histories, collect_predictions, to_wide


def test_collect_from_repeat_folders(tmp_path, fake_run, make_history):
    table = fake_run(tmp_path, repeats=2)
    collected = collect_predictions(tmp_path)
    key = ["model", "repeat", "subject", "session"]
    pd.testing.assert_frame_equal(
        collected.sort_values(key, ignore_index=True),
        table.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
    histories = collect_histories(tmp_path)
    assert sorted(histories) == [(r, f) for r in range(2) for f in range(3)]
    pd.testing.assert_frame_equal(histories[(1, 2)], make_history(12))


def test_collect_from_fold_folders_of_a_single_repeat(tmp_path, fake_run):
    fake_run(tmp_path, repeats=1)
    collected = collect_predictions(tmp_path)
    assert set(collected["repeat"]) == {0}
    assert set(collected["fold"]) == {0, 1, 2}
    assert sorted(collect_histories(tmp_path)) == [(0, 0), (0, 1), (0, 2)]


def test_collect_from_an_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LoesError, match="No predictions"):
        collect_predictions(tmp_path)
    with pytest.raises(LoesError, match="does not exist"):
        collect_predictions(tmp_path / "nowhere")
    with pytest.raises(LoesError, match="does not exist"):
        collect_histories(tmp_path / "nowhere")
    assert collect_histories(tmp_path) == {}


def test_collect_names_a_fold_file_with_missing_columns(tmp_path):
    (tmp_path / "fold_0").mkdir()
    pd.DataFrame({"subject": ["a"], "predicted": [1.0]}).to_csv(
        tmp_path / "fold_0" / "predictions.csv", index=False
    )
    with pytest.raises(LoesError, match=r"fold_0.predictions\.csv lacks .*session"):
        collect_predictions(tmp_path)


def test_collect_names_a_fold_file_without_the_repeat_column(tmp_path, fake_run):
    fake_run(tmp_path, repeats=1)
    path = tmp_path / "fold_1" / "predictions.csv"
    pd.read_csv(path).drop(columns="repeat").to_csv(path, index=False)
    with pytest.raises(LoesError, match=r"fold_1.predictions\.csv lacks the column\(s\) repeat"):
        collect_predictions(tmp_path)


def test_collect_names_an_unreadable_fold_file(tmp_path, fake_run):
    fake_run(tmp_path, repeats=2)
    (tmp_path / "repeat_1" / "fold_0" / "history.csv").write_text("")
    with pytest.raises(LoesError, match=r"repeat_1.fold_0.history\.csv is not a readable CSV"):
        collect_histories(tmp_path)


def test_collect_refuses_a_folder_mixing_two_layouts(tmp_path, fake_run):
    fake_run(tmp_path, repeats=2)
    (tmp_path / "fold_0").mkdir()
    (tmp_path / "repeat_0" / "fold_0" / "predictions.csv").rename(
        tmp_path / "fold_0" / "predictions.csv"
    )
    with pytest.raises(LoesError, match="both fold_K/ and repeat_R/fold_K/"):
        collect_predictions(tmp_path)


def test_collect_without_fold_folders_reads_the_run_predictions_csv(tmp_path, fake_run):
    table = fake_run(tmp_path / "run", repeats=2)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "predictions.csv").write_text(to_wide(table).to_csv(index=False))
    collected = collect_predictions(tmp_path / "copy")
    key = ["model", "repeat", "subject", "session"]
    pd.testing.assert_frame_equal(
        collected.sort_values(key, ignore_index=True),
        table.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
