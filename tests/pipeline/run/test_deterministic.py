"""``training.deterministic``: the setting validates, turns on PyTorch's deterministic
algorithms (no cuDNN autotuning, no TF32) for the run, turns mixed precision off wherever it
is decided, and leaves no process-wide flag behind that a later run depends on."""

import os

import pandas as pd
import pytest
import torch

from loes.errors import LoesError
from loes.pipeline import load_config, load_ensemble
from loes.pipeline.run.config import TrainingConfig
from loes.pipeline.run.device import (
    backend_flags,
    configure_backends,
    restore_backend_flags,
)
from loes.pipeline.run.effective import annotated_yaml, effective_values

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def flags():
    """The process-wide flags before the test, put back after it."""
    before = backend_flags()
    yield before
    restore_backend_flags(before)


def test_the_setting_defaults_to_off_and_takes_only_booleans():
    assert load_config().training.deterministic is False
    assert load_config(overrides=["training.deterministic=true"]).training.deterministic is True
    with pytest.raises(LoesError, match=r"training\.deterministic"):
        load_config(overrides=["training.deterministic=sometimes"])


@pytest.mark.parametrize(
    ("amp", "deterministic", "expected"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
)
def test_mixed_precision_is_amp_and_not_deterministic(amp, deterministic, expected):
    assert TrainingConfig(amp=amp, deterministic=deterministic).mixed_precision is expected


def test_deterministic_sets_every_flag_and_a_fast_run_after_it_clears_them(flags):
    configure_backends(CPU, deterministic=True)
    b = torch.backends
    assert torch.are_deterministic_algorithms_enabled()
    # MaxPool3d's CUDA backward has no deterministic kernel: a warning, not a stopped run
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert (b.cudnn.benchmark, b.cudnn.deterministic) == (False, True)
    assert (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32) == (False, False)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")
    assert torch.utils.deterministic.fill_uninitialized_memory is False  # 1.43x slower on a CPU
    # the next run in this process, not deterministic, does not inherit them
    configure_backends(CUDA, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert (b.cudnn.benchmark, b.cudnn.deterministic, b.cudnn.allow_tf32) == (True, False, True)
    configure_backends(CPU, deterministic=False)
    assert b.cudnn.benchmark is False  # autotuning is for CUDA runs only


def test_the_flags_are_put_back_as_they_were(flags):
    before = configure_backends(CUDA, deterministic=True)
    assert before == flags
    restore_backend_flags(before)
    assert backend_flags() == flags


def test_config_yaml_says_deterministic_turns_mixed_precision_off_on_cuda():
    config = load_config(overrides=["training.deterministic=true"])
    amp = effective_values(config, "cuda:0")["training.amp"]
    assert (amp["setting"], amp["effective"]) == (True, False)
    assert "deterministic" in amp["why"]
    assert "amp: true  # in effect: false (training.deterministic turns mixed precision off)" in (
        annotated_yaml(config, "cuda:0")
    )
    # known before the device is (loes slurm on a login node)
    assert effective_values(config, None)["training.amp"]["effective"] is False
    assert "training.amp" not in effective_values(load_config(), "cuda:0")


@pytest.mark.slow
def test_a_deterministic_run_sets_the_flags_and_gives_the_cpu_runs_predictions(
    tiny_config, tiny_run, tmp_path, flags
):
    from loes.pipeline import cross_validate

    out = tmp_path / "run"
    cross_validate(tiny_config(out, "training.deterministic=true"))
    assert torch.are_deterministic_algorithms_enabled()  # the run set them (the fixture resets)
    assert load_ensemble(out).amp is False  # loes predict follows the run: no mixed precision
    # on a CPU, which trains in float32 anyway, the setting changes no number
    for fold in ("fold_0", "fold_1"):
        pd.testing.assert_frame_equal(
            pd.read_csv(out / fold / "predictions.csv"),
            pd.read_csv(tiny_run / fold / "predictions.csv"),
        )
