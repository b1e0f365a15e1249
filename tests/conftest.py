"""Fixtures shared by the whole suite: the tiny synthetic cohort, built once per session, and
the configuration of a tiny cross-validation on it."""

import sys
from collections import Counter

import pytest

from loes.data.synthetic import make_tiny_cohort
from loes.pipeline import load_config


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory):
    """``manifest.csv`` of 8 synthetic subjects at 4 mm (seed 1); do not modify its files."""
    return make_tiny_cohort(tmp_path_factory.mktemp("tiny"), subjects=8, seed=1)


@pytest.fixture(scope="session")
def tiny_config(tiny_manifest):
    """``tiny_config(out, *overrides)``: 2 folds x 2 epochs of SFCN at 4 mm on the tiny cohort."""

    def make(out, *extra, manifest=tiny_manifest):
        return load_config(
            overrides=[
                f"data.source={manifest}",
                f"out={out}",
                "device=cpu",
                "model.name=sfcn",
                "preprocessing.pixdim=[4.0, 4.0, 4.0]",
                "preprocessing.spatial_size=[32, 40, 32]",
                "training.epochs=2",
                "training.batch_size=4",
                "training.patience=5",
                "cv.folds=2",
                "cv.val_fraction=0.25",
                *extra,
            ]
        )

    return make


@pytest.fixture(scope="session")
def tiny_run(tiny_config, tmp_path_factory):
    """A finished tiny cross-validation run folder (2 folds x 2 epochs of SFCN at 4 mm) on
    ``tiny_manifest``; do not modify it."""
    from loes.pipeline import cross_validate

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    cross_validate(tiny_config(out))
    return out


@pytest.fixture(scope="session")
def tiny_run_file(tiny_config, tmp_path_factory):
    """``tiny_run_file(out, *overrides)``: the tiny configuration written to a YAML file, for
    commands run in other processes (``loes cv --config FILE``); returns its path."""
    folder = tmp_path_factory.mktemp("configs")

    def make(out, *extra):
        path = folder / f"{len(list(folder.iterdir()))}.yaml"
        path.write_text(tiny_config(out, *extra).to_yaml())
        return path

    return make


@pytest.fixture(scope="session")
def one_thread_run(tiny_run_file, tmp_path_factory):
    """The tiny cross-validation run one fold after the other in a fresh process with one
    torch thread (``OMP_NUM_THREADS=1``): the reference that one-fold jobs, run with one
    thread each, must reproduce byte for byte. Returns the run folder."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("runs") / "sequential"
    command = [sys.executable, "-m", "loes", "cv", "--config", str(tiny_run_file(out))]
    subprocess.run(
        command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return out


# -- how many hostile-input cases ran (tests/data/test_hostile_inputs.py), across xdist workers


def _hostile_counts() -> dict:
    module = sys.modules.get("tests.data.test_hostile_inputs")
    return dict(module.RAN) if module is not None else {}


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: send its counts to the controller
        workeroutput["hostile_inputs"] = _hostile_counts()


def pytest_testnodedown(node, error):
    counts = getattr(node.config, "_hostile_inputs", Counter())
    counts.update(getattr(node, "workeroutput", {}).get("hostile_inputs", {}))
    node.config._hostile_inputs = counts


def pytest_terminal_summary(terminalreporter, config):
    counts = Counter(getattr(config, "_hostile_inputs", {})) + Counter(_hostile_counts())
    if counts:
        ran = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        terminalreporter.write_line(f"hostile inputs: {ran}")
