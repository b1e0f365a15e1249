import shutil

import pandas as pd
import pytest

from loes.errors import LoesError
from loes.pipeline.run.collect import collect_histories, collect_predictions, fold_status
from loes.pipeline.run.predictions import to_wide


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
    (tmp_path / "fold_0" / "metrics.json").write_text("{}")
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


def test_only_finished_folds_are_collected_and_the_others_named(tmp_path, fake_run):
    table = fake_run(tmp_path, repeats=1, folds=3)
    (tmp_path / "fold_1" / "metrics.json").unlink()  # still training
    collected = collect_predictions(tmp_path)
    assert sorted(collected["fold"].unique()) == [0, 2]
    assert sorted(collect_histories(tmp_path)) == [(0, 0), (0, 2)]
    status = fold_status(collected, tmp_path)
    assert status["partial"]
    assert (status["expected_from"], status["n_expected"], status["n_reported"]) == (
        "splits.json",
        3,
        2,
    )
    assert status["missing"] == [
        {"repeat": 0, "fold": 1, "name": "fold 1", "reason": "unfinished (no metrics.json)"}
    ]
    assert status["text"].startswith("Partial run: this report covers 2 of 3 folds. Missing: ")
    assert "Missing: fold 1 unfinished (no metrics.json)." in status["text"]
    assert status["expected"] == [[0, 0], [0, 1], [0, 2]]
    complete = fold_status(table, tmp_path / "elsewhere")  # no splits.json: nothing to miss
    assert complete == {
        "partial": False,
        "expected_from": "",
        "n_expected": None,
        "n_reported": 3,
        "expected": None,
        "missing": [],
        "text": "",
    }


def test_folds_missing_from_the_splits_are_named_with_their_repeat(tmp_path, fake_run):
    fake_run(tmp_path, repeats=2, folds=3)
    shutil.rmtree(tmp_path / "repeat_1" / "fold_2")  # never started
    (tmp_path / "repeat_0" / "fold_0" / "metrics.json").unlink()
    status = fold_status(collect_predictions(tmp_path), tmp_path)
    assert [(m["name"], m["reason"]) for m in status["missing"]] == [
        ("repeat 0 fold 0", "unfinished (no metrics.json)"),
        ("repeat 1 fold 2", "not started (no folder)"),
    ]
    assert "covers 4 of 6 folds" in status["text"]


def test_the_expected_folds_come_from_the_settings_without_splits_json(tmp_path, fake_run):
    table = fake_run(tmp_path, repeats=1, folds=3)
    (tmp_path / "splits.json").unlink()
    config = {"cv": {"folds": 4, "repeats": 1, "by_site": False, "splits_file": None}}
    status = fold_status(table, tmp_path, config)
    assert status["expected_from"] == "config.yaml"
    assert [(m["name"], m["reason"]) for m in status["missing"]] == [
        ("fold 3", "not started (no folder)")
    ]


def test_no_finished_fold_is_a_clear_error(tmp_path, fake_run):
    fake_run(tmp_path, repeats=1)
    for marker in tmp_path.glob("fold_*/metrics.json"):
        marker.unlink()
    with pytest.raises(LoesError, match=r"No finished fold .*fold_0.*metrics\.json"):
        collect_predictions(tmp_path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: text.rindex(",", 0, -40)], r"line \d+ has no \w+ value.*truncated"),
        (lambda text: text.replace("network", "", 1), r"line 2 has no model value"),
        (lambda text: text.replace(",network", ",network\n7,", 1), r"line 3 has no"),
        (lambda text: text.replace("\n0,1,", "\nzero,1,", 1), r"line 2: repeat is 'zero'"),
        (lambda text: text.replace("\n0,1,", "\n0,2,", 1), r"holds rows of repeat 0 fold 2"),
        (lambda text: text + "0,1,a,b,1,2,network,extra,fields\n", r"not a readable CSV"),
    ],
    ids=["truncated", "empty-cell", "short-line", "not-a-number", "other-fold", "extra-fields"],
)
def test_an_ill_formed_fold_file_is_named_not_a_traceback(tmp_path, fake_run, damage, message):
    fake_run(tmp_path, repeats=1)
    path = tmp_path / "fold_1" / "predictions.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(LoesError, match=r"fold_1.predictions\.csv.*" + message):
        collect_predictions(tmp_path)


def test_collect_keeps_the_age_of_each_scan(tmp_path, fake_run):
    fake_run(tmp_path, repeats=1)
    for path in tmp_path.glob("fold_*/predictions.csv"):
        table = pd.read_csv(path)
        table.assign(age=8.5).to_csv(path, index=False)
    collected = collect_predictions(tmp_path)
    assert (collected["age"] == 8.5).all()
    assert "age" in to_wide(collected).columns


def test_a_fold_file_of_another_repeat_is_named(tmp_path, fake_run):
    fake_run(tmp_path, repeats=2)
    path = tmp_path / "repeat_1" / "fold_0" / "predictions.csv"
    path.write_text(path.read_text().replace("\n1,0,", "\n0,0,", 1))
    with pytest.raises(
        LoesError, match=r"holds rows of repeat 0 fold 0, but sits in repeat_1/fold_0/"
    ):
        collect_predictions(tmp_path)


def test_a_file_given_as_the_run_folder_is_named_as_a_file(tmp_path):
    (tmp_path / "report.md").write_text("# a report\n")
    with pytest.raises(LoesError, match=r"report\.md is a file, not a run folder"):
        collect_predictions(tmp_path / "report.md")
    with pytest.raises(LoesError, match=r"Run folder .*missing does not exist"):
        collect_predictions(tmp_path / "missing")
