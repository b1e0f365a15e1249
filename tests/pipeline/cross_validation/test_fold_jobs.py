"""One fold per process (``loes cv --fold K``): what a cluster job runs. Jobs start together
on one run folder and one disk cache, and their folds make the sequential run's report."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from loes.cli import main
from loes.pipeline import cross_validate_fold
from loes.pipeline.cluster import disk_cache as disk_cache_module
from loes.pipeline.cross_validation.cohort import PAIRS_FOLDER, preprocess_cohort
from loes.pipeline.run.data import load_table

pytestmark = pytest.mark.slow


def _fold_job(config_file, fold):
    return subprocess.Popen(
        [sys.executable, "-m", "loes", "cv", "--config", str(config_file), "--fold", str(fold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # as the reference run
    )


def test_two_fold_jobs_at_once_share_a_run_folder_and_a_disk_cache(
    one_thread_run, tiny_run_file, tmp_path, capsys
):
    """Both jobs start on a run folder and a cache that do not exist yet: one writes
    splits.json, both fill the cache, each writes its fold; the report of their folds is the
    sequential run's."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    config = tiny_run_file(run, "preprocessing.cache=disk", f"data.cache_dir={cache}")
    jobs = [_fold_job(config, fold) for fold in (0, 1)]
    outputs = [job.communicate(timeout=600) for job in jobs]
    for job, (_, err) in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, err
    assert "repeat 0 fold 0: MAE network" in outputs[0][1]
    assert "repeat 0 fold 1: MAE network" in outputs[1][1]
    assert (run / "splits.json").read_bytes() == (one_thread_run / "splits.json").read_bytes()
    # exact: like the reference, fresh processes on this CPU with one thread each
    for fold in (0, 1):
        assert (run / f"fold_{fold}" / "predictions.csv").read_bytes() == (
            one_thread_run / f"fold_{fold}" / "predictions.csv"
        ).read_bytes()
    assert not (run / "report.json").exists()  # the report is `loes report`'s job
    assert main(["report", str(run)]) == 0
    assert (run / "predictions.csv").read_bytes() == (
        one_thread_run / "predictions.csv"
    ).read_bytes()
    cached = list((cache / "persistent").rglob("*"))
    (folder,) = (cache / "persistent").iterdir()
    assert len(list(folder.glob("*.pt"))) == 15  # the scans
    pairs = pd.read_csv(one_thread_run / "changes.csv")  # consecutive pairs of test subjects
    assert len(list((folder / PAIRS_FOLDER).glob("*.pt"))) >= len(pairs) > 0  # every pair
    for fold in (0, 1):  # the paired networks read the pairs back from the cache: the same
        assert (run / f"fold_{fold}" / "changes.csv").read_bytes() == (
            one_thread_run / f"fold_{fold}" / "changes.csv"
        ).read_bytes()
    assert not [p for p in cached if p.name.startswith(".")]  # no temporary left
    assert not [p for p in run.rglob(".*") if p.is_file()]


def test_a_finished_fold_is_left_alone(one_thread_run, tiny_config, tmp_path, capsys, monkeypatch):
    import json
    import shutil

    from loes.pipeline.cross_validation import cv as cross_validation

    run = tmp_path / "run"
    shutil.copytree(one_thread_run, run)
    monkeypatch.setattr(cross_validation, "run_fold", pytest.fail)
    monkeypatch.setattr(cross_validation, "preprocess_cohort", pytest.fail)
    stamp = (run / "fold_1" / "best.pt").stat().st_mtime_ns
    metrics = cross_validate_fold(tiny_config(run), fold=1)
    assert "repeat 0 fold 1 is finished" in capsys.readouterr().err
    assert metrics == json.loads((run / "fold_1" / "metrics.json").read_text())
    assert (run / "fold_1" / "best.pt").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fold", "7"], r"--fold 7: the run has 2 folds, numbered 0-1 \(cv.folds=2\)"),
        (["--fold", "-1"], r"--fold -1: the run has 2 folds, numbered 0-1"),
        (["--fold", "0", "--repeat", "1"], r"--repeat 1: the run has 1 repeat, numbered 0"),
        (["--repeat", "1"], r"--repeat R needs --fold K"),
    ],
)
def test_a_fold_the_run_does_not_have_is_refused_before_anything_is_written(
    tiny_run_file, tmp_path, capsys, flags, message
):
    import re

    run = tmp_path / "run"
    assert main(["cv", "--config", str(tiny_run_file(run)), *flags]) == 2
    err = capsys.readouterr().err
    # the error alone (after the note of what reading set aside), no traceback
    assert re.search(message, err.splitlines()[-1]), err
    assert [line for line in err.splitlines() if "error" in line] == err.splitlines()[-1:]
    assert "Traceback" not in err
    assert not run.exists()


def test_a_cache_file_is_written_beside_its_name_and_appears_whole(
    tiny_config, tmp_path, monkeypatch
):
    """A shared disk cache never shows a partial file: each is written to a temporary in the
    same folder (same file system) and renamed, never copied from /tmp."""
    writes = []
    real_save = torch.save

    def save(obj, f, **kwargs):
        final = f.parent / f.name.split(".")[1]  # .HASH.pt.1a2b3c4d.pt -> HASH
        writes.append((f.parent, final.with_suffix(".pt").exists()))
        real_save(obj, f, **kwargs)

    monkeypatch.setattr(disk_cache_module.torch, "save", save)
    config = tiny_config(tmp_path / "run", "preprocessing.cache=disk", f"data.cache_dir={tmp_path}")
    cohort = preprocess_cohort(load_table(config), config, torch.device("cpu"))
    folder = next((tmp_path / "persistent").iterdir())
    pairs = folder / PAIRS_FOLDER  # the registered subtractions of the paired change model
    assert len(writes) == len(cohort.table) + len(cohort.pairs) == 15 + len(cohort.pairs)
    assert [parent for parent, _ in writes] == [folder] * 15 + [pairs] * len(cohort.pairs)
    assert not any(existed for _, existed in writes)  # the name appears only once whole
    files = [*folder.glob("*.pt"), *pairs.iterdir()]
    assert [p.name.startswith(".") for p in files] == [False] * len(writes)
