"""End to end on a tiny synthetic cohort: 2 folds, 2 epochs, small volumes."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from loes.cli import main
from loes.data import load_dataset
from loes.errors import LoesError
from loes.io import WriteError, jsonable
from loes.pipeline import cross_validate, regression_metrics, run_fold
from loes.pipeline.cross_validation import cv as cross_validation_module
from loes.pipeline.cross_validation import training as training_module
from loes.pipeline.cross_validation.cohort import (
    CACHE_FILE,
    PAIRS_FOLDER,
    disk_cache_key,
    preprocess_cohort,
    session_pairs,
)
from loes.pipeline.run.checkpoints import load_fold_model
from loes.pipeline.run.data import load_table
from loes.pipeline.run.folder import fold_dir, load_run_config
from tests._floats import assert_float32_close

FOLD_FILES = ["best.pt", "last.pt", "history.csv", "predictions.csv", "metrics.json"]
RUN_FILES = ["config.yaml", "environment.json", "splits.json", "report.json", "report.md"]
RUN_FILES += ["report.html", "predictions.csv", "scans.csv"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest(tiny_manifest):
    return tiny_manifest


@pytest.fixture(scope="module")
def finished_run(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "reference"
    return out, cross_validate(tiny_config(out))


def test_every_file_is_written(finished_run):
    out, _ = finished_run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    for fold in (0, 1):
        for name in FOLD_FILES:
            assert (out / f"fold_{fold}" / name).is_file(), f"fold_{fold}/{name}"
    history = pd.read_csv(out / "fold_0" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"train_loss", "val_mae", "lr", "data_seconds", "compute_seconds"} <= set(history)


def test_metrics_recomputed_from_predictions_match_report(finished_run, manifest):
    out, report = finished_run
    predictions = pd.read_csv(out / "predictions.csv")
    table = load_dataset(manifest)  # post-contrast scans are left out
    assert len(predictions) == len(table)  # every scan tested exactly once
    assert set(zip(predictions["subject"], predictions["session"], strict=True)) == set(
        zip(table["subject"], table["session"], strict=True)
    )
    ages = table.set_index(["subject", "session"])["age"]  # carried from the table for plots
    assert (
        predictions.set_index(["subject", "session"])["age"].sort_index().equals(ages.sort_index())
    )
    saved = json.loads((out / "report.json").read_text())
    for column, model in [("predicted", "network"), ("predicted_median", "median")]:
        expected = regression_metrics(predictions["loes_score"], predictions[column])
        pooled = saved["metrics"][model]["pooled"]
        assert pooled["mae"] == pytest.approx(expected["mae"])
        assert pooled["rmse"] == pytest.approx(expected["rmse"])
    assert report["metrics"]["network"]["pooled"]["mae"] == pytest.approx(
        saved["metrics"]["network"]["pooled"]["mae"]
    )


def test_no_subject_on_both_sides_and_median_from_training_side(finished_run, manifest):
    out, _ = finished_run
    splits = json.loads((out / "splits.json").read_text())
    table = load_dataset(manifest)
    predictions = pd.read_csv(out / "predictions.csv")
    folds = splits["folds"]
    assert len(folds) == 2
    for fold in folds:
        train, val, test = (set(fold[side]) for side in ("train", "val", "test"))
        assert not train & test
        assert not val & test
        assert not train & val
        tested = predictions[predictions["fold"] == fold["fold"]]
        assert set(tested["subject"]) == test
        training_side = table[table["subject"].isin(train | val)]["loes_score"]
        assert np.allclose(tested["predicted_median"], np.median(training_side))


def test_checkpoints_load_safely_and_hold_the_resume_state(finished_run):
    out, _ = finished_run
    last = torch.load(out / "fold_0" / "last.pt", weights_only=True)
    assert last["epoch"] == 2
    assert {"spec", "model", "optimizer", "scheduler", "rng", "history"} <= set(last)
    best = torch.load(out / "fold_0" / "best.pt", weights_only=True)
    assert best["epoch"] == json.loads((out / "fold_0" / "metrics.json").read_text())["best_epoch"]


def test_resuming_after_a_kill_gives_the_same_result(
    finished_run, manifest, tmp_path, monkeypatch, tiny_config, capsys
):
    out, _ = finished_run
    real_predict = training_module.predict
    calls = {"n": 0}

    def killed_during_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the inner validation of fold 0's second epoch
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(training_module, "predict", killed_during_second_epoch)
    config = tiny_config(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        cross_validate(config)
    assert (tmp_path / "killed" / "fold_0" / "last.pt").exists()
    assert not (tmp_path / "killed" / "fold_0" / "metrics.json").exists()
    assert torch.load(tmp_path / "killed" / "fold_0" / "last.pt", weights_only=True)["epoch"] == 1

    monkeypatch.setattr(training_module, "predict", real_predict)
    capsys.readouterr()
    cross_validate(config)
    assert "repeat 0 fold 0: resuming at epoch 2/2" in capsys.readouterr().err
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "predictions.csv"),
        pd.read_csv(tmp_path / "killed" / "predictions.csv"),
    )


def test_finished_folds_are_skipped_without_preprocessing(
    finished_run, manifest, monkeypatch, tiny_config, capsys
):
    out, _ = finished_run
    monkeypatch.setattr(cross_validation_module, "run_fold", pytest.fail)
    monkeypatch.setattr(cross_validation_module, "preprocess_cohort", pytest.fail)
    report = cross_validate(tiny_config(out))
    assert report["n_scans"] == len(load_dataset(manifest))
    assert "all 2 folds finished; rewriting the report" in capsys.readouterr().err


def test_a_fold_trained_but_not_scored_is_scored_on_resume(
    finished_run, tiny_config, tmp_path, capsys
):
    out, _ = finished_run
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    (partial / "fold_1" / "metrics.json").unlink()  # killed after training, before scoring
    capsys.readouterr()
    cross_validate(tiny_config(partial))
    err = capsys.readouterr().err
    assert "1 of 2 folds finished; running the other 1" in err
    assert "repeat 0 fold 1: training finished at epoch 2; predicting" in err
    # exact: the same weights scored in the same process (threads, kernels, batches)
    assert (partial / "predictions.csv").read_bytes() == (out / "predictions.csv").read_bytes()


def test_results_without_their_configuration_are_refused(finished_run, tiny_config, tmp_path):
    out, _ = finished_run
    orphan = tmp_path / "orphan"
    shutil.copytree(out, orphan)
    (orphan / "config.yaml").unlink()
    with pytest.raises(LoesError, match=r"holds fold results but no config\.yaml"):
        cross_validate(tiny_config(orphan, "training.lr=0.5"))


def test_validation_warnings_are_shown_and_fractional_scores_reported(
    tiny_manifest, tiny_config, tmp_path, capsys
):
    table = pd.read_csv(tiny_manifest)
    table["image"] = [str(tiny_manifest.parent / p) for p in table["image"]]
    table.loc[0, "loes_score"] = 7.3  # an average of readers: a warning, not an error
    table.to_csv(tmp_path / "averaged.csv", index=False)
    run = tmp_path / "run"
    cross_validate(tiny_config(run, manifest=tmp_path / "averaged.csv"))
    err = capsys.readouterr().err
    assert re.search(r"warning: .*averaged\.csv row 2.*7\.3", err), err
    predictions = pd.read_csv(run / "predictions.csv")
    assert 7.3 in predictions["loes_score"].tolist()  # the table's score, for every model


def test_a_run_is_not_resumed_on_changed_data(tiny_manifest, tiny_config, tmp_path):
    table = pd.read_csv(tiny_manifest, dtype={"subject": str, "session": str})
    table["image"] = [str(tiny_manifest.parent / p) for p in table["image"]]
    table.to_csv(tmp_path / "edited.csv", index=False)
    config = tiny_config(tmp_path / "run", manifest=tmp_path / "edited.csv")
    cross_validate(config)
    shutil.rmtree(tmp_path / "run" / "fold_1")  # a fold still to run
    first = table.index[~table["gd"].astype(bool)][0]
    subject, session, score = table.loc[first, ["subject", "session", "loes_score"]]
    table.loc[first, "loes_score"] = score + 5
    table.to_csv(tmp_path / "edited.csv", index=False)
    changed = f"{subject} {session} scored {score:g} then, {score + 5:g} now"
    with pytest.raises(LoesError, match=f"was run on other data \\({changed}\\)"):
        cross_validate(config)
    assert not (tmp_path / "run" / "fold_1").exists()


def test_a_table_without_scans_is_named(tmp_path, tiny_config):
    (tmp_path / "empty.csv").write_text("subject,session,image,loes_score\n")
    with pytest.raises(LoesError, match=r"empty\.csv lists no scans to cross-validate"):
        cross_validate(tiny_config(tmp_path / "run", manifest=tmp_path / "empty.csv"))


def test_a_run_folder_that_cannot_be_written_is_named_before_any_scan_is_read(
    tiny_config, tmp_path
):
    (tmp_path / "a file").write_text("in the way\n")
    config = tiny_config(tmp_path / "a file" / "run", manifest=tmp_path / "no such table.csv")
    with pytest.raises(WriteError, match=r"cannot write in .*a file/run \(.*\); choose another"):
        cross_validate(config)  # the missing table would be named if it were read first


def test_a_folder_of_other_files_is_never_written_into(tiny_config, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "report.md").write_text("my notes\n")
    with pytest.raises(LoesError, match=r"own is not empty and holds no loes run"):
        cross_validate(tiny_config(own))
    assert [p.name for p in own.iterdir()] == ["report.md"]
    assert (own / "report.md").read_text() == "my notes\n"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cv.folds=50", "folds"),
        ("cv.splits_file=no/such/splits.json", r"cv\.splits_file=no/such/splits\.json: no such"),
    ],
)
def test_fold_problems_stop_before_the_run_folder_is_written(
    tiny_config, tmp_path, override, message
):
    with pytest.raises(LoesError, match=message):
        cross_validate(tiny_config(tmp_path / "run", override))
    assert not (tmp_path / "run").exists()


def test_a_moved_run_resumes_with_other_paths_and_loaders(
    finished_run, tiny_config, tmp_path, monkeypatch
):
    """Where a run lives and how it loads data do not decide its results."""
    out, _ = finished_run
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    monkeypatch.setattr(cross_validation_module, "run_fold", pytest.fail)
    extra = ["preprocessing.cache=disk", f"data.cache_dir={tmp_path}"]
    cross_validate(tiny_config(moved, *extra))
    assert load_run_config(moved).out == str(moved)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "predictions.csv"), pd.read_csv(moved / "predictions.csv")
    )


def test_one_fold_alone_gives_the_fold_of_the_whole_run(finished_run, tiny_config, tmp_path):
    """``run_fold`` is the unit of work of a cluster job: fold 1 on its own, in a fresh folder,
    is fold 1 of the full run."""
    out, _ = finished_run
    config = tiny_config(tmp_path / "alone", f"cv.splits_file={out / 'splits.json'}")
    table = load_table(config)
    splits = cross_validation_module.run_splits(config, table)
    cohort = preprocess_cohort(table, config, torch.device("cpu"))
    folder = fold_dir(tmp_path / "alone", 0, 1, repeats=1)
    metrics = run_fold(cohort, splits.fold(0, 1), config, folder, torch.device("cpu"))
    reference = out / "fold_1"
    # exact: the same seeds, data and code in the same process (threads, kernels, batches)
    assert (folder / "predictions.csv").read_bytes() == (reference / "predictions.csv").read_bytes()
    assert jsonable(metrics) == json.loads((reference / "metrics.json").read_text())
    assert not (tmp_path / "alone" / "fold_0").exists()


def test_a_fold_model_is_rebuilt_from_its_folder_alone(finished_run, manifest, tmp_path):
    out, _ = finished_run
    model, extra = load_fold_model(out / "fold_0")
    config = load_run_config(out)
    assert model.spec == config.model_spec()
    assert extra["epoch"] == json.loads((out / "fold_0" / "metrics.json").read_text())["best_epoch"]
    # its own preprocessing and weights reproduce the fold's test predictions
    predictions = pd.read_csv(out / "fold_0" / "predictions.csv", dtype={"session": str})
    network = predictions[predictions["model"] == "network"]
    table = load_dataset(manifest).set_index(["subject", "session"])
    pre = model.preprocessing()
    images = torch.stack(
        [
            pre({"image": table.loc[(r.subject, r.session), "image"]})["image"]
            for r in network.itertuples()
        ]
    )
    images = images.as_subclass(torch.Tensor)
    with torch.no_grad():  # cv.tta=flip: the mean over the scan and its left-right mirror
        views = [model.eval()(x).clamp(0, 34) for x in (images, images.flip(2))]
    predicted = torch.stack(views).mean(dim=0).numpy()
    assert config.cv.tta == "flip"
    assert_float32_close(predicted, network["predicted"])  # one batch, not the run's: rounding

    # a checkpoint from before models described themselves: the run's config.yaml describes it
    old = tmp_path / "run" / "fold_0"
    old.mkdir(parents=True)
    shutil.copy(out / "config.yaml", tmp_path / "run" / "config.yaml")
    checkpoint = torch.load(out / "fold_0" / "best.pt", weights_only=True)
    del checkpoint["spec"]
    torch.save(checkpoint, old / "best.pt")
    rebuilt, _ = load_fold_model(old)
    assert rebuilt.spec == model.spec
    (tmp_path / "run" / "config.yaml").unlink()
    with pytest.raises(LoesError, match=r"holds no config\.yaml"):
        load_fold_model(old)
    with pytest.raises(LoesError, match="train the fold first"):
        load_fold_model(tmp_path / "run" / "fold_9")


def test_a_run_folder_refuses_another_configuration(finished_run, manifest, tiny_config):
    out, _ = finished_run
    with pytest.raises(
        LoesError,
        match=r"another configuration \(differs in training\.lr: 0\.001 there, 0\.5 now\)",
    ):
        cross_validate(tiny_config(out, "training.lr=0.5"))


def test_invalid_data_stops_before_training(manifest, tmp_path, tiny_config):
    table = pd.read_csv(manifest)
    table.loc[0, "loes_score"] = 40
    bad = tmp_path / "bad_manifest.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(LoesError, match=r"loes_score .*40|outside"):
        cross_validate(
            tiny_config(tmp_path / "bad", f"data.images_dir={manifest.parent}", manifest=bad)
        )
    assert not (tmp_path / "bad").exists()  # nothing written: the corrected run may use it


def test_cli_reports_bad_configuration_clearly(manifest, tmp_path, capsys):
    assert main(["cv", str(manifest), "--epochs", "0", "--out", str(tmp_path / "x")]) == 2
    assert "training.epochs must be positive" in capsys.readouterr().err
    assert main(["cv", str(manifest), "training.optimizer=adam"]) == 2
    assert "training.optimizer must be one of 'adamw' or 'sgd'" in capsys.readouterr().err


def test_disk_cache_gives_the_same_result_and_is_reused(
    finished_run, manifest, tmp_path, tiny_config, capsys
):
    out, _ = finished_run
    cache = tmp_path / "cache"
    extra = ["preprocessing.cache=disk", f"data.cache_dir={cache}"]
    disk = tiny_config(tmp_path / "disk", *extra)
    cross_validate(disk)
    (folder,) = (cache / "persistent").iterdir()
    assert json.loads((folder / CACHE_FILE).read_text()) == disk_cache_key(disk)  # what it holds
    assert f"(disk cache {folder}, " in capsys.readouterr().err
    scans = len(load_dataset(manifest))
    assert len(list(folder.glob("*.pt"))) == scans  # one preprocessed file per scan
    pairs = session_pairs(load_table(disk))
    assert len(list((folder / PAIRS_FOLDER).glob("*.pt"))) == len(pairs) > 0  # one per pair
    for name in ("predictions.csv", "changes.csv"):  # the paired networks read the same pairs
        pd.testing.assert_frame_equal(
            pd.read_csv(out / name), pd.read_csv(tmp_path / "disk" / name)
        )
    files = sorted(folder.rglob("*.pt"))
    stamps = [f.stat().st_mtime_ns for f in files]
    config = tiny_config(tmp_path / "disk-again", *extra)
    capsys.readouterr()
    again = preprocess_cohort(load_table(config), config, torch.device("cpu"))
    assert [f.stat().st_mtime_ns for f in sorted(folder.rglob("*.pt"))] == stamps
    ready = f"{len(pairs)} pairs of sessions ready (0 registered now, {len(pairs)} read from disk)"
    assert ready in capsys.readouterr().err
    first = again.pair_images[0]
    assert first["image"].shape[0] == 1
    assert first["loes_score"] == pairs["loes_score_change"].iloc[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only messages")
def test_cuda_settings_without_a_gpu_are_clear(manifest, tmp_path, tiny_config):
    with pytest.raises(LoesError, match="PyTorch sees no CUDA GPU; use --device cpu"):
        cross_validate(tiny_config(tmp_path / "a", "device=cuda"))
    with pytest.raises(LoesError, match=r"preprocessing\.cache=gpu needs a CUDA device"):
        cross_validate(tiny_config(tmp_path / "b", "preprocessing.cache=gpu"))
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=vgg", "unknown network 'vgg'; available: alexnet3d"),
        ("model.name=alexnet3d", "every axis needs at least 69 voxels"),
        ("model.name=resnet18", None),
        ("augmentation.rotate_degrees=400", "augmentation.rotate_degrees must be between 0 and"),
        ("preprocessing.orientation=RRS", "preprocessing: orientation must be three axis codes"),
    ],
)
def test_network_and_transform_problems_fail_before_any_work(
    manifest, tmp_path, override, message, tiny_config
):
    extra = [override] if message else [override, "model.dropout=0.3"]
    with pytest.raises(LoesError, match=message or "resnet18 has no dropout layer"):
        cross_validate(tiny_config(tmp_path / "run", *extra))
    assert not (tmp_path / "run").exists()


def test_cli_passes_the_bids_suffix_to_the_reader(tiny_manifest, tmp_path, capsys):
    anat = tmp_path / "bids" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    image = sorted(tiny_manifest.parent.rglob("*_T1w.nii.gz"))[0]
    shutil.copy(image, anat / "sub-01_T1w.nii.gz")
    out = tmp_path / "run"
    assert main(["cv", str(tmp_path / "bids"), "--suffix", "FLAIR", "--out", str(out)]) == 2
    assert "no sub-*/[ses-*/]anat/*_FLAIR.nii[.gz] images" in capsys.readouterr().err


def _complete(path) -> bool:
    """Whether a result file reads back whole in the format its name promises."""
    if path.suffix == ".csv":
        return len(pd.read_csv(path)) > 0
    if path.suffix == ".json":
        return isinstance(json.loads(path.read_text()), dict)
    if path.suffix == ".pt":
        return "model" in torch.load(path, weights_only=True)
    if path.suffix == ".yaml":
        return isinstance(yaml.safe_load(path.read_text()), dict)
    if path.suffix == ".html":
        return path.read_text().rstrip().endswith("</html>")
    return path.stat().st_size > 0


def _killed_at(command, moment, timeout=300.0) -> bool:
    """Start ``command``, SIGKILL its process group the moment ``moment()`` is true; returns
    whether it was killed (False: it finished first)."""
    process = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if moment():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    assert process.wait(timeout=max(deadline - time.monotonic(), 1)) == 0
    return False


def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_result(tiny_config, tmp_path):
    """Killed while caching, mid-epoch, while writing a checkpoint and while writing the
    report, and restarted each time: no result file is ever half-written, and the end result
    is the uninterrupted run's."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    config = tiny_config(run, "preprocessing.cache=disk", f"data.cache_dir={cache}")
    (tmp_path / "run.yaml").write_text(config.to_yaml())
    command = [sys.executable, "-m", "loes.cli", "cv", "--config", str(tmp_path / "run.yaml")]

    def hidden(folder, prefix):
        return folder.is_dir() and any(p.name.startswith(prefix) for p in folder.iterdir())

    moments = {
        "caching": lambda: any((cache / "persistent").rglob("*.pt")),
        "mid-epoch": lambda: (
            (run / "fold_0").is_dir() and not (run / "fold_0" / "last.pt").exists()
        ),
        "writing a checkpoint": lambda: hidden(run / "fold_1", ".last.pt."),
        "writing the report": lambda: hidden(run, ".predictions.csv.") or hidden(run, ".report"),
    }
    killed = []
    for name, moment in moments.items():
        if _killed_at(command, moment):
            killed.append(name)
        results = [p for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")]
        assert all(_complete(p) for p in results), name
    assert len(killed) >= 3, killed  # a write can be too quick to catch; the rest are not
    assert not _killed_at(command, lambda: False)
    # the uninterrupted run, also in a fresh process: this worker's torch threads may have been
    # changed by an earlier test, and a float32 sum in another thread count rounds otherwise
    reference = tiny_config(tmp_path / "reference", f"data.cache_dir={tmp_path / 'cache2'}")
    (tmp_path / "reference.yaml").write_text(reference.to_yaml())
    subprocess.run(
        [*command[:-1], str(tmp_path / "reference.yaml")], check=True, capture_output=True
    )
    # exact: both fresh processes on this CPU with the same environment, and so threads
    expected = (tmp_path / "reference" / "predictions.csv").read_bytes()
    assert (run / "predictions.csv").read_bytes() == expected
    assert not [p for p in run.rglob(".*") if p.is_file()]  # no temporary file left behind
