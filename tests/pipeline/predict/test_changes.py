"""Change between consecutive sessions from predicted scores: pairs, order, interval, call,
flags, coverage, files, and `loes predict` writing them for a tiny run."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from loes.cli import main
from loes.data import load_dataset
from loes.errors import LoesError
from loes.io import read_csv
from loes.pipeline import load_ensemble, write_predictions
from loes.pipeline.predict.changes import (
    CHANGE_COLUMNS,
    calibration_pairs,
    change_calibration,
    change_column_definitions,
    change_metrics,
    change_table,
    changes_path,
    oof_change_calibration,
    write_changes,
)
from loes.pipeline.predict.paired import PairedChange
from loes.pipeline.predict.table import join_flags

#: |true - predicted| of 0.1 .. 2.5: the 90% finite-sample quantile is the
#: ceil((25 + 1) * 0.9) = 24th smallest, 2.4 points
RESIDUALS = np.arange(1, 26) / 10
CALIBRATION = change_calibration(RESIDUALS, np.zeros(25))


def scans(*rows, **columns):
    """A predictions table: rows of (subject, session, predicted), the other columns given
    per row in ``columns`` (lists) or defaulted."""
    table = pd.DataFrame(rows, columns=["subject", "session", "predicted"])
    table["image"] = [
        f"{s}_{e}_T1w.nii.gz" for s, e in zip(table.subject, table.session, strict=True)
    ]
    defaults = {"age": np.nan, "site": "", "loes_score": np.nan, "flags": "", "error": ""}
    for name, value in defaults.items():
        table[name] = columns.get(name, [value] * len(table))
    return table


def test_the_calibration_is_the_textbook_split_conformal_quantile():
    low, high = CALIBRATION.interval([0.0, 2.5, -40.0], coverage=0.9)
    np.testing.assert_allclose(low, [-2.4, 0.1, -34.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(high, [2.4, 4.9, -34.0], rtol=0, atol=1e-12)
    # 80%: the ceil(26 * 0.8) = 21st smallest
    np.testing.assert_allclose(CALIBRATION.interval([0.0], 0.8)[1], [2.1], atol=1e-12)


def test_a_subject_with_one_session_gives_no_row():
    table = scans(("a", "ses-1", 3.0), ("b", "ses-1", 2.0), ("b", "ses-2", 4.5))
    changes = change_table(table, CALIBRATION)
    assert changes["subject"].tolist() == ["b"]
    assert list(changes.columns) == list(CHANGE_COLUMNS)
    only_one = change_table(scans(("a", "ses-1", 3.0), ("c", "ses-1", 1.0)), CALIBRATION)
    assert only_one.empty
    assert list(only_one.columns) == list(CHANGE_COLUMNS)


def test_without_ages_sessions_go_in_session_id_order_and_years_are_empty():
    table = scans(("s", "ses-10", 5.0), ("s", "ses-2", 1.5), ("s", "ses-1", 1.0))
    changes = change_table(table, CALIBRATION)
    assert changes[["from_session", "to_session"]].values.tolist() == [
        ["ses-1", "ses-2"],
        ["ses-2", "ses-10"],
    ]
    assert changes["predicted_change"].tolist() == [0.5, 3.5]
    assert changes["years"].isna().all()
    assert changes.attrs["order"] == "session id"


def test_ages_order_the_sessions_of_a_subject_that_has_them_all():
    table = scans(
        ("s", "ses-a", 4.0),
        ("s", "ses-b", 1.0),
        ("t", "ses-1", 1.0),
        ("t", "ses-2", 2.0),
        age=[9.25, 8.0, np.nan, 7.0],  # t lacks one age: session id order, no years
    )
    changes = change_table(table, CALIBRATION)
    assert changes[["subject", "from_session", "to_session"]].values.tolist() == [
        ["s", "ses-b", "ses-a"],
        ["t", "ses-1", "ses-2"],
    ]
    assert changes["years"].tolist()[0] == 1.25
    assert np.isnan(changes["years"].tolist()[1])
    assert changes["predicted_change"].tolist() == [3.0, 1.0]
    assert changes.attrs["order"] == "age where every session of a subject has one, else session id"


def test_ties_in_age_are_broken_by_session_id_whatever_the_row_order():
    table = scans(
        ("s", "ses-3", 2.0), ("s", "ses-2", 1.0), ("s", "ses-1", 0.0), age=[8.0, 7.0, 7.0]
    )
    changes = change_table(table, CALIBRATION)
    assert changes[["from_session", "to_session"]].values.tolist() == [
        ["ses-1", "ses-2"],
        ["ses-2", "ses-3"],
    ]
    assert changes["years"].tolist() == [0.0, 1.0]
    shuffled = change_table(table.iloc[[1, 2, 0]], CALIBRATION)
    pd.testing.assert_frame_equal(shuffled, changes)


def test_interval_and_call():
    # predicted changes 2.9, -1.9, 0.0, 2.8, -2.0 with the 2.4-point half-width
    table = scans(*[("s", f"ses-{i}", v) for i, v in enumerate([1.0, 3.9, 2.0, 2.0, 4.8, 2.8])])
    changes = change_table(table, CALIBRATION, coverage=0.9)
    assert changes["predicted_change"].tolist() == [2.9, -1.9, 0.0, 2.8, -2.0]
    assert changes["change_low"].tolist() == [0.5, -4.3, -2.4, 0.4, -4.4]
    assert changes["change_high"].tolist() == [5.3, 0.5, 2.4, 5.2, 0.4]
    # the whole interval at or above +0.5: progressed; below +0.5: no progression
    assert changes["call"].tolist() == [
        "progressed",
        "cannot tell",
        "cannot tell",
        "cannot tell",
        "no progression",
    ]
    assert changes["call_sure"].tolist() == [True, False, False, False, True]


def test_a_paired_change_replaces_the_difference_and_a_contradiction_is_flagged():
    table = scans(("s", "ses-1", 5.4), ("s", "ses-2", 1.1), ("s", "ses-3", 1.3))
    read = {"ses-2": 0.8, "ses-3": -1e-9}  # what paired networks read, per later session

    changes = change_table(table, CALIBRATION, pair_change=lambda a, b: read[b.name])
    assert changes["predicted_change"].tolist() == [0.8, 0.0]
    assert str(changes["predicted_change"].iloc[1]) == "0.0"  # never -0.0
    # the scores fell by 4.3 but the pair reads +0.8: more than DISAGREEMENT apart
    assert (
        "the predicted scores changed by -4.3 but the paired networks read +0.8"
        in (changes["flags"].iloc[0])
    )
    assert changes["flags"].iloc[1] == ""  # 0.2 against 0.0: no contradiction
    assert not changes["call_sure"].iloc[0]
    definitions = change_column_definitions(0.9, 25, "paired")
    assert "paired networks' reading of the later scan" in definitions["predicted_change"]
    assert "predicted score minus" in change_column_definitions(0.9, 25)["predicted_change"]


def test_sessions_from_two_sites_or_protocols_are_flagged_and_never_sure():
    table = scans(
        ("s", "ses-1", 0.0),
        ("s", "ses-2", 3.0),
        ("s", "ses-3", 6.0),
        ("t", "ses-1", 0.0),
        ("t", "ses-2", 3.0),
        site=["site-A", "site-B", "site-B", "site-A", "site-A"],
    )
    table.loc[4, "image"] = "t_ses-2_ce-gadolinium_T1w.nii.gz"
    table["image"] = "sub-" + table["image"]
    changes = change_table(table, CALIBRATION).set_index(["subject", "from_session"])
    assert (
        changes.loc[("s", "ses-1"), "flags"]
        == "sessions from different sites (site-A, then site-B)"
    )
    assert changes.loc[("s", "ses-2"), "flags"] == ""
    assert changes.loc[("t", "ses-1"), "flags"] == (
        "sessions with different protocols (contrast none then gadolinium)"
    )
    assert changes["call"].tolist() == ["progressed"] * 3
    assert changes["call_sure"].tolist() == [False, True, False]


def test_the_scans_own_flags_are_carried_once():
    run_flag = "run: Smoke run"
    table = scans(
        ("s", "ses-1", 0.0),
        ("s", "ses-2", 3.0),
        flags=[run_flag, f"{run_flag}; predicted 3.0, above the highest score trained on"],
    )
    changes = change_table(table, CALIBRATION)
    assert changes["flags"].tolist() == [
        f"{run_flag}; ses-2: predicted 3.0, above the highest score trained on"
    ]
    assert not changes["call_sure"].any()


def test_a_predictions_csv_read_as_text_gives_the_same_changes(tmp_path):
    table = scans(("s", "ses-1", 0.0), ("s", "ses-2", 3.0), ("s", "ses-3", np.nan))
    table.to_csv(tmp_path / "p.csv", index=False)
    text = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)  # blanks: ""
    pd.testing.assert_frame_equal(change_table(text, CALIBRATION), change_table(table, CALIBRATION))


def test_a_scans_flag_holding_a_separator_is_carried_whole():
    own = "image: qform and sform differ; sform used"
    table = scans(("s", "ses-1", 0.0), ("s", "ses-2", 3.0), flags=["", join_flags([own])])
    (flags,) = change_table(table, CALIBRATION)["flags"]
    assert flags == "ses-2: image: qform and sform differ, sform used"


def test_an_unscored_session_pairs_with_none_and_its_neighbours_say_so():
    table = scans(("s", "ses-1", 0.0), ("s", "ses-2", np.nan), ("s", "ses-3", 1.0))
    table.loc[1, "error"] = "does not exist"
    changes = change_table(table, CALIBRATION)
    assert changes[["from_session", "to_session", "predicted_change"]].values.tolist() == [
        ["ses-1", "ses-3", 1.0]
    ]
    assert changes["flags"].iloc[0].startswith("session ses-2 between them could not be scored")


def test_a_session_on_two_rows_leaves_its_subject_out_with_the_reason():
    table = scans(("s", "ses-1", 0.0), ("s", "ses-1", 1.0), ("t", "ses-1", 0.0), ("t", "ses-2", 1))
    changes = change_table(table, CALIBRATION)
    assert changes["subject"].tolist() == ["t"]
    assert changes.attrs["left_out"] == [
        "s: session ses-1 is on 2 scored rows, so its sessions cannot be put in order"
    ]


def test_without_calibration_the_interval_is_the_whole_range_and_flagged():
    changes = change_table(scans(("s", "ses-1", 0.0), ("s", "ses-2", 9.0)), None)
    assert changes[["change_low", "change_high", "call"]].values.tolist() == [
        [-34.0, 34.0, "cannot tell"]
    ]
    assert "no out-of-fold consecutive pairs" in changes["flags"].iloc[0]
    tiny = change_calibration([0.0, 1.0], [0.5, 0.5])  # 2 pairs: too few for 90%
    changes = change_table(scans(("s", "ses-1", 0.0), ("s", "ses-2", 9.0)), tiny)
    assert changes[["change_low", "change_high"]].values.tolist() == [[-34.0, 34.0]]
    assert "2 out-of-fold consecutive pairs, too few" in changes["flags"].iloc[0]


def test_bad_input_is_named():
    with pytest.raises(LoesError, match="lacks the column"):
        change_table(pd.DataFrame({"subject": ["s"], "session": ["1"]}), CALIBRATION)
    with pytest.raises(LoesError, match="coverage must be between 0 and 1"):
        change_table(scans(("s", "ses-1", 0.0)), CALIBRATION, coverage=90)


def test_coverage_width_and_calls_against_the_given_changes():
    # intervals +-2.4 around 3.0, -1.3, 0.0, 3.0; given changes 2.0 (inside), 0.5 (inside),
    # 3.0 (outside), 0.0 (outside: a wrong "progressed"); a pair without one is left out
    table = scans(
        *[("s", f"ses-{i}", v) for i, v in enumerate([1.0, 4.0, 2.7, 2.7, 5.7, 5.0])],
        loes_score=[1.0, 3.0, 3.5, 6.5, 6.5, np.nan],
    )
    changes = change_table(table, CALIBRATION)
    assert changes["predicted_change"].tolist() == [3.0, -1.3, 0.0, 3.0, -0.7]
    assert changes["given_change"].tolist()[:4] == [2.0, 0.5, 3.0, 0.0]
    assert changes["call"].tolist()[:4] == [
        "progressed",
        "cannot tell",
        "cannot tell",
        "progressed",
    ]
    m = change_metrics(changes)
    assert m["n"] == 4
    assert m["coverage"] == pytest.approx(2 / 4, abs=1e-12)
    assert m["mean_width"] == pytest.approx(4.8, abs=1e-9)
    assert m["mae"] == pytest.approx((1.0 + 1.8 + 3.0 + 3.0) / 4, abs=1e-9)
    assert m["no_change_mae"] == pytest.approx((2.0 + 0.5 + 3.0 + 0.0) / 4, abs=1e-9)
    assert (m["progressed"], m["called_progressed"], m["wrong_calls"]) == (3, 2, 1)
    assert np.isnan(change_metrics(changes.iloc[:0])["coverage"])


def test_the_calibration_pairs_of_a_run_stay_within_a_repeat():
    oof = pd.DataFrame(
        {
            "repeat": [0, 0, 1, 1, 0],
            "subject": ["s", "s", "s", "s", "t"],
            "session": ["ses-1", "ses-2", "ses-1", "ses-2", "ses-1"],
            "loes_score": [1.0, 3.0, 1.0, 3.0, 0.0],
            "predicted": [1.5, 2.0, 0.5, 4.0, 0.0],
        }
    )
    pairs = calibration_pairs(oof)
    assert pairs[
        ["repeat", "subject", "loes_score_change", "predicted_change"]
    ].values.tolist() == [
        [0, "s", 2.0, 0.5],
        [1, "s", 2.0, 3.5],
    ]


def test_the_csv_round_trip_keeps_every_value(tmp_path):
    table = scans(
        *[("s", f"ses-{i}", v) for i, v in enumerate([1.0, 3.3, 2.0])],
        age=[7.0, 7.5, 8.25],
        site=["A", "A", "B"],
        loes_score=[1.0, 3.0, np.nan],
    )
    changes = change_table(table, CALIBRATION)
    changes.attrs["provenance"] = {"columns": dict(CHANGE_COLUMNS)}
    path = write_changes(changes, tmp_path / "changes.csv")
    back = read_csv(path, dtype={"subject": str})
    assert list(back.columns) == list(CHANGE_COLUMNS)
    for column in ("years", "given_change", "predicted_change", "change_low", "change_high"):
        np.testing.assert_array_equal(back[column], changes[column])
    assert back["call"].tolist() == changes["call"].tolist()
    assert back["call_sure"].tolist() == changes["call_sure"].tolist()
    assert back["flags"].fillna("").tolist() == changes["flags"].tolist()
    assert changes["flags"].tolist() == ["", "sessions from different sites (A, then B)"]
    assert (
        json.loads(path.with_suffix(".json").read_text())["columns"].keys() == CHANGE_COLUMNS.keys()
    )
    # the predictions CSV read back gives the same changes as the table in memory
    write_predictions(table, tmp_path / "predictions.csv")
    again = read_csv(tmp_path / "predictions.csv", dtype={"subject": str, "session": str})
    pd.testing.assert_frame_equal(
        change_table(again, CALIBRATION), change_table(table, CALIBRATION)
    )


def test_the_changes_file_sits_beside_the_predictions(tmp_path):
    assert changes_path(tmp_path / "predictions.csv") == tmp_path / "changes.csv"
    assert changes_path(tmp_path / "new.csv") == tmp_path / "new_changes.csv"


# -- with a tiny finished run


@pytest.fixture(scope="module")
def ensemble(tiny_run):
    return load_ensemble(tiny_run)


@pytest.mark.slow
def test_the_ensemble_calibrates_on_the_runs_out_of_fold_consecutive_pairs(ensemble, tiny_run):
    # the run trained the paired change model: its out-of-fold changes calibrate
    paired = pd.read_csv(tiny_run / "changes.csv", dtype={"subject": str})
    assert ensemble.change_calibration.n == len(paired) > 0
    np.testing.assert_allclose(ensemble.change_calibration.y_true, paired["loes_score_change"])
    np.testing.assert_allclose(ensemble.change_calibration.y_pred, paired["predicted_change"])
    # without it (change.model: subtraction), the differences of the out-of-fold scores do
    run = pd.read_csv(tiny_run / "predictions.csv", dtype={"subject": str, "session": str})
    true, predicted = [], []
    for _, series in run.sort_values(["subject", "age", "session"]).groupby("subject"):
        true += np.diff(series["loes_score"]).tolist()
        predicted += np.diff(series["predicted"]).tolist()
    subtraction = oof_change_calibration(run)
    assert subtraction.n == len(true) > 0
    np.testing.assert_allclose(subtraction.y_true, true, atol=1e-9)
    np.testing.assert_allclose(subtraction.y_pred, predicted, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_predict_changes_on_the_tiny_cohort(ensemble, tiny_manifest, tmp_path):
    table = load_dataset(tiny_manifest)
    predictions = ensemble.predict(table, device="cpu")
    changes = ensemble.changes(predictions)
    assert (predictions["age"] == table["age"]).all()
    assert (predictions["site"] == table["site"]).all()
    # the run trained on pre-contrast scans: sub-003 and sub-006 have none; sub-007 has
    # ses-01 (site-B) and ses-03 (site-C)
    pairs = [tuple(p) for p in changes[["subject", "from_session", "to_session"]].values]
    assert ("sub-007", "ses-01", "ses-03") in pairs
    assert not {"sub-003", "sub-006"} & set(changes["subject"])
    assert len(changes) == sum(max(0, n - 1) for n in table.groupby("subject").size())
    rows = predictions.set_index(["subject", "session"])
    paired = PairedChange(ensemble)  # the run trained the paired change model
    for row in changes.itertuples():
        earlier, later = (
            rows.loc[(row.subject, row.from_session)],
            rows.loc[(row.subject, row.to_session)],
        )
        assert row.predicted_change == pytest.approx(paired(earlier, later), abs=0.05 + 1e-9)
        assert row.change_low <= row.predicted_change <= row.change_high
    # without a paired model: the later predicted score minus the earlier
    subtraction = change_table(predictions, ensemble.change_calibration)
    for row in subtraction.itertuples():
        expected = (
            rows.loc[(row.subject, row.to_session), "predicted"]
            - rows.loc[(row.subject, row.from_session), "predicted"]
        )
        assert row.predicted_change == pytest.approx(expected, abs=1e-9)
    sub7 = changes[changes["subject"] == "sub-007"].iloc[0]
    assert "sessions from different sites (site-B, then site-C)" in sub7["flags"]
    assert sub7["years"] == pytest.approx(1.6)
    provenance = changes.attrs["provenance"]
    assert provenance["order"] == "age"
    assert provenance["calibration_pairs"] == ensemble.change_calibration.n
    assert provenance["columns"].keys() == CHANGE_COLUMNS.keys()
    # the same from predict_changes, and from a saved ensemble (a bundle's models/)
    again = ensemble.predict_changes(table, device="cpu")
    again.attrs, changes.attrs = {}, {}  # the provenance says when: not a row
    pd.testing.assert_frame_equal(again, changes)
    ensemble.save(tmp_path / "models")
    saved = load_ensemble(tmp_path / "models")
    assert saved.change_calibration.y_true == ensemble.change_calibration.y_true
    from_saved = saved.changes(predictions)
    from_saved.attrs = {}
    pd.testing.assert_frame_equal(from_saved, changes)


@pytest.mark.slow
def test_loes_predict_writes_changes_csv_and_the_page_shows_trajectories(
    tiny_run, tiny_manifest, tmp_path, capsys
):
    out = tmp_path / "scores.csv"
    assert main(["predict", str(tiny_run), str(tiny_manifest), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    changes = read_csv(tmp_path / "scores_changes.csv", dtype={"subject": str})
    sidecar = json.loads((tmp_path / "scores_changes.json").read_text())
    assert list(changes.columns) == list(CHANGE_COLUMNS) == list(sidecar["columns"])
    subjects = changes["subject"].nunique()
    assert (
        f"changes: {len(changes)} pairs of consecutive sessions of {subjects} subjects" in printed
    )
    assert f"changes: {tmp_path / 'scores_changes.csv'}" in printed
    # every scan is one the run trained on: no change metrics
    assert f"{len(changes)} changes with a scan the run trained on" in printed
    assert "given change" not in printed
    page = out.with_suffix(".html").read_text()
    assert page.count('aria-label="predicted scores of ') == subjects
    assert page.count("<h3>sub-") == subjects


@pytest.mark.slow
def test_a_follow_up_with_far_thicker_slices_is_flagged_and_never_sure(
    ensemble, tiny_manifest, tmp_path
):
    table = load_dataset(tiny_manifest)
    sub7 = table[table["subject"] == "sub-007"].sort_values("age").iloc[:2]
    later = nib.load(sub7["image"].iloc[1])
    step = int(np.ceil(1.6 * ensemble.profile.slice_max / later.header.get_zooms()[2]))
    affine = later.affine.copy()
    affine[:3, 2] *= step  # every step-th slice: the same head, slices step times as thick
    thick = tmp_path / "sub-007_ses-03_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(later.dataobj)[:, :, ::step], affine), thick)
    sub7.loc[sub7.index[1], "image"] = str(thick)
    predictions = ensemble.predict(sub7, device="cpu")
    flagged = predictions["flags"].iloc[1]
    assert f"slices of {later.header.get_zooms()[2] * step:.1f} mm, far thicker" in flagged
    assert "slices of" not in predictions["flags"].iloc[0]
    (change,) = ensemble.changes(predictions).itertuples()
    assert "ses-03: slices of" in change.flags
    assert not change.call_sure
