"""The paired change model (change.model: paired) end to end on the tiny synthetic cohort: its
pairs, its folders and files, what the report and loes predict read from it, resuming, and the
errors. The expected pairs are made here from scans.csv and splits.json by hand."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import mean_absolute_error, roc_auc_score

from loes.data import Fold
from loes.errors import LoesError
from loes.models import LoesModel
from loes.pipeline import cross_validate, load_ensemble
from loes.pipeline.cross_validation import training as training_module
from loes.pipeline.cross_validation.change_model import check_fold_pairs, train_change_model
from loes.pipeline.cross_validation.cohort import _PreprocessSessions, session_pairs
from loes.pipeline.predict.paired import PairedChange
from loes.pipeline.run.collect import collect_changes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def hand_made_pairs(run) -> pd.DataFrame:
    """Consecutive pairs of each fold's test subjects, sessions sorted by age."""
    scans = pd.read_csv(run / "predictions.csv", dtype={"subject": str, "session": str})
    folds = json.loads((run / "splits.json").read_text())["folds"]
    rows = []
    for fold in folds:
        for subject in fold["test"]:
            series = scans[scans["subject"] == subject].sort_values("age")
            for (_, a), (_, b) in zip(series.iterrows(), series.iloc[1:].iterrows(), strict=False):
                rows.append(
                    {
                        "fold": fold["fold"],
                        "subject": subject,
                        "from_session": a["session"],
                        "to_session": b["session"],
                        "loes_score_change": b["loes_score"] - a["loes_score"],
                    }
                )
    return pd.DataFrame(rows).sort_values(["subject", "from_session"]).reset_index(drop=True)


def test_session_pairs_are_every_pair_in_time_order():
    table = pd.DataFrame(
        {
            "subject": ["b", "a", "a", "a", "c"],
            "session": ["ses-1", "ses-10", "ses-2", "ses-3", "ses-1"],
            "age": [5.0, 9.0, 4.0, 6.0, 7.0],
            "loes_score": [1.0, 6.0, 2.0, 2.5, 0.0],
        }
    )
    pairs = session_pairs(table)
    assert pairs[["subject", "from_session", "to_session"]].values.tolist() == [
        ["a", "ses-2", "ses-3"],
        ["a", "ses-2", "ses-10"],
        ["a", "ses-3", "ses-10"],
    ]  # b and c have one session each: no pair
    assert pairs["consecutive"].tolist() == [True, False, True]
    assert pairs["loes_score_change"].tolist() == [0.5, 4.0, 3.5]
    assert pairs[["earlier", "later"]].values.tolist() == [[2, 3], [2, 1], [3, 1]]  # rows


def test_threads_preprocess_each_session_once():
    """Pairs registered on several threads share sessions: each scan is preprocessed once."""
    calls, gate = [], threading.Barrier(4)

    def slow_preprocessing(data):
        calls.append(data["image"])
        time.sleep(0.05)  # long enough for the other threads to ask for the same scan
        return {"image": torch.full((1, 2, 2, 2), float(len(data["image"])))}

    sessions = _PreprocessSessions(slow_preprocessing)

    def pair(i):
        gate.wait()
        return sessions({"earlier": "ses-01", "later": f"ses-0{2 + i % 2}", "other": i})

    with ThreadPoolExecutor(4) as pool:
        out = list(pool.map(pair, range(4)))
    assert sorted(calls) == ["ses-01", "ses-02", "ses-03"]
    assert sessions.pairs == 4
    assert [d["other"] for d in out] == [0, 1, 2, 3]
    assert all(d["earlier"] is out[0]["earlier"] for d in out)
    sessions.clear()
    assert sessions.done == {}


def test_each_fold_predicts_its_test_subjects_consecutive_pairs(run):
    expected = hand_made_pairs(run)
    found = collect_changes(run).sort_values(["subject", "from_session"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        found[expected.columns.tolist()], expected, check_dtype=False, check_exact=False
    )
    written = pd.read_csv(run / "changes.csv", dtype={"subject": str})
    assert len(written) == len(found)
    for fold in (0, 1):
        folder = run / f"fold_{fold}" / "change"
        model, extra = LoesModel.load(folder / "best.pt")  # weights_only inside
        assert extra["epoch"] == 2  # the last epoch, with no selection, and saying so
        assert extra["selection"] == "last epoch"
        assert "val_mae" not in extra
        assert model.spec["network"] == "sfcn"  # the run's network, one input channel
        assert model.eval()(torch.zeros(1, 1, 32, 40, 32)).shape == (1,)
        assert (folder / "last.pt").is_file()
        metrics = json.loads((run / f"fold_{fold}" / "metrics.json").read_text())
        mine = found[found["fold"] == fold]
        assert metrics["change"]["n_pairs"] == len(mine)
        assert metrics["change"]["mae"] == pytest.approx(
            mean_absolute_error(mine["loes_score_change"], mine["predicted_change"])
        )


def test_the_report_reads_the_paired_networks_change(run):
    report = json.loads((run / "report.json").read_text())
    change = report["change"]
    pairs = collect_changes(run)
    assert change["method"] == "paired"
    assert change["predictors"][:2] == ["network", "subtraction"]
    assert change["metrics"]["network"]["mae"] == pytest.approx(
        mean_absolute_error(pairs["loes_score_change"], pairs["predicted_change"])
    )
    positive = pairs["loes_score_change"] >= 0.5
    if positive.any() and (~positive).any():
        assert change["metrics"]["network"]["roc_auc"] == pytest.approx(
            roc_auc_score(positive, pairs["predicted_change"])
        )
    assert "paired network" in (run / "report.md").read_text()


def test_loes_predict_reads_each_pair_with_the_paired_networks(run, tiny_manifest):
    ensemble = load_ensemble(run)
    assert all(m.change_model is not None for m in ensemble.members)
    scans = pd.read_csv(tiny_manifest, dtype={"subject": str, "session": str})
    scans = scans[scans["gd"] == 0].assign(
        image=[str(tiny_manifest.parent / p) for p in scans["image"][scans["gd"] == 0]]
    )
    subject = scans["subject"].value_counts().index[0]  # a subject with several sessions
    chosen = scans[scans["subject"] == subject][
        ["subject", "session", "image", "loes_score", "age"]
    ]
    predictions = ensemble.predict(chosen)
    changes = ensemble.changes(predictions)
    assert len(changes) == len(chosen) - 1
    assert changes.attrs["provenance"]["method"] == "paired"
    by_session = predictions.set_index("session")
    first = changes.iloc[0]
    direct = PairedChange(ensemble)(
        by_session.loc[first["from_session"]], by_session.loc[first["to_session"]]
    )
    assert first["predicted_change"] == pytest.approx(direct, abs=0.06)  # table rounds to 0.1
    subtraction = (
        by_session.loc[first["to_session"], "predicted"]
        - by_session.loc[first["from_session"], "predicted"]
    )
    assert ensemble.change_calibration.n == len(collect_changes(run))
    assert not np.isclose(first["predicted_change"], subtraction, atol=1e-3)


def test_a_bundle_keeps_the_paired_networks(run, tmp_path):
    ensemble = load_ensemble(run)
    ensemble.save(tmp_path)
    again = load_ensemble(tmp_path)
    for before, after in zip(ensemble.members, again.members, strict=True):
        for key, value in before.change_model.state_dict().items():
            assert torch.equal(value, after.change_model.state_dict()[key])
    assert again.change_calibration.n == ensemble.change_calibration.n


def test_a_run_killed_while_training_the_change_model_resumes_it(
    run, tiny_config, tmp_path, monkeypatch, capsys
):
    real_epoch = training_module._train_epoch
    calls = {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # fold 0: two epochs of the scan model, then the change model's 2nd
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training_module, "_train_epoch", killed)
    config = tiny_config(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        cross_validate(config)
    last = tmp_path / "killed" / "fold_0" / "change" / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert not (tmp_path / "killed" / "fold_0" / "metrics.json").exists()
    monkeypatch.setattr(training_module, "_train_epoch", real_epoch)
    capsys.readouterr()
    cross_validate(config)
    assert "fold 0 change: resuming at epoch 2/2" in capsys.readouterr().err
    # bit for bit the run never killed: thick slices and dropout repeat in their own threads
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "changes.csv"),
        pd.read_csv(tmp_path / "killed" / "changes.csv"),
        check_exact=True,
    )


def test_a_fold_without_training_pairs_is_named():
    pairs = pd.DataFrame(
        {
            "earlier": [0, 2],
            "later": [1, 3],
            "subject": ["a", "b"],
            "from_session": ["ses-1", "ses-1"],
            "to_session": ["ses-2", "ses-2"],
            "consecutive": [True, True],
            "loes_score_change": [0.0, 1.0],
        }
    )
    check_fold_pairs(pairs, Fold(repeat=0, fold=1, train=["a", "b"], val=["c"], test=["d"]))
    # the validation subjects' pairs are trained on too
    check_fold_pairs(pairs, Fold(repeat=0, fold=1, train=["a", "c"], val=["b"], test=["d"]))
    fold = Fold(repeat=0, fold=1, train=["a", "c"], val=["d"], test=["b"])
    with pytest.raises(LoesError, match=r"fold 1.*1 pair of sessions.*change.model=subtraction"):
        train_change_model(pairs, None, None, fold, None, None, torch.device("cpu"), seed=1)
