"""Training one fold on random volumes whose score shows as a bright cube: early stopping,
TensorBoard, the BatchNorm recomputation and the self-describing checkpoints."""

import numpy as np
import pytest


def _random_fold(n: int = 12, size=(32, 32, 32)):
    import torch

    from loes.pipeline.cross_validation.training import FoldData

    generator = torch.Generator().manual_seed(0)
    scores = torch.linspace(0, 20, n)
    # a score the network can see: brightness of a central cube grows with the score
    items = []
    for i, score in enumerate(scores):
        image = torch.randn(1, *size, generator=generator) * 0.1
        image[:, 12:20, 12:20, 12:20] += score / 10
        items.append(
            {"image": image, "loes_score": float(score), "subject": f"s{i}", "session": "1"}
        )
    return FoldData(train=items[:8], val=items[8:], test=items[8:], train_scores=scores[:8].numpy())


#: BatchNorm statistics recomputed in the training's layout and batch order against the same
#: ones in another: float32 sums over each channel's 8 x 32**3 voxels, in another order, round
#: apart by ~sqrt(n) float32 steps, relative to the channel values' magnitude, so to each
#: tensor's largest value (measured up to 1.4e-4 of it with one thread or AVX2). 1e-3 of it
#: still catches statistics of other scans: another sample of 3 moves some by 0.3 of it
BATCHNORM_RTOL = 1e-3


def _statistics_close(got, expected) -> bool:
    import torch

    scale = expected.abs().max().item()
    return torch.allclose(got, expected, rtol=BATCHNORM_RTOL, atol=BATCHNORM_RTOL * scale)


@pytest.mark.slow
def test_early_stopping_uses_patience(tmp_path):
    import torch

    from loes.pipeline.cross_validation.training import train_fold
    from loes.pipeline.run.config_loading import load_config

    config = load_config(
        overrides=[
            "model.name=sfcn",
            "preprocessing.spatial_size=[32, 32, 32]",
            "training.epochs=30",
            "training.patience=2",
            "training.lr=1e-12",  # the weights hardly move, so improvements soon stop
            "training.scheduler=none",
        ]
    )
    _, history = train_fold(config, _random_fold(), tmp_path, torch.device("cpu"), seed=0)
    best = int(history["val_mae"].idxmin())  # the first epoch with the lowest MAE
    assert len(history) == best + 1 + 2 < 30  # stopped two epochs after the last improvement
    assert (history["val_mae"].iloc[best + 1 :] >= history["val_mae"].iloc[best]).all()


@pytest.mark.slow
def test_without_validation_items_the_last_epoch_is_kept(tmp_path):
    import torch

    from loes.pipeline.cross_validation.training import train_fold
    from loes.pipeline.run.config_loading import load_config

    config = load_config(
        overrides=[
            "model.name=sfcn",
            "preprocessing.spatial_size=[32, 32, 32]",
            "training.epochs=3",
        ]
    )
    fold = _random_fold()
    fold.val = []  # the paired change model of a fold whose validation subjects have no pair
    model, history = train_fold(config, fold, tmp_path, torch.device("cpu"), seed=0)
    assert len(history) == 3
    assert history["val_mae"].isna().all()
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 3
    last = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    for key, value in best["model"].items():
        assert torch.equal(value, last[key])
        assert torch.equal(value, model.state_dict()[key])  # the model returned is the last


@pytest.mark.slow
def test_tensorboard_logs_every_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from loes.pipeline.cross_validation.training import train_fold
    from loes.pipeline.run.config_loading import load_config

    config = load_config(
        overrides=[
            "model.name=sfcn",
            "preprocessing.spatial_size=[32, 32, 32]",
            "training.epochs=2",
        ]
    )
    _, history = train_fold(config, _random_fold(), tmp_path, torch.device("cpu"), seed=0)
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    for key in ("train_loss", "val_mae", "lr"):
        logged = events.Scalars(key)
        assert [e.step for e in logged] == [1, 2]
        np.testing.assert_allclose([e.value for e in logged], history[key], rtol=1e-6)


@pytest.mark.slow
def test_batchnorm_statistics_come_from_the_unaugmented_training_scans(tmp_path):
    """After every epoch BatchNorm is recomputed on the training scans as preprocessed: an
    augmentation that shifts intensities by 100 must not reach the statistics."""
    import copy

    import torch
    from torch.optim.swa_utils import update_bn

    from loes.models import LoesModel
    from loes.pipeline.cross_validation.training import train_fold
    from loes.pipeline.run.config_loading import load_config

    config = load_config(
        overrides=[
            "model.name=sfcn",
            "preprocessing.spatial_size=[32, 32, 32]",
            "training.epochs=2",
            "training.batch_size=8",  # the 8 training scans make one batch
        ]
    )
    data = _random_fold()
    data.augment = lambda item: {**item, "image": item["image"] + 100.0}
    model, history = train_fold(config, data, tmp_path, torch.device("cpu"), seed=0)
    assert (history["batchnorm_seconds"] > 0).all()
    # both checkpoints describe their model, and best.pt is the returned one
    for name in ("best.pt", "last.pt"):
        loaded, _ = LoesModel.load(tmp_path / name)
        assert loaded.spec == model.spec
        assert loaded.spec["network"] == "sfcn"
        assert loaded.spec["spatial_size"] == [32, 32, 32]
    best, extra = LoesModel.load(tmp_path / "best.pt")
    assert extra["epoch"] == int(history.loc[history["val_mae"].idxmin(), "epoch"])
    for key, value in best.state_dict().items():  # the returned model loaded best.pt: exact
        torch.testing.assert_close(value, model.state_dict()[key], rtol=0, atol=0)

    def statistics(module):
        return {k: v for k, v in module.state_dict().items() if k.endswith(("_mean", "_var"))}

    trained = statistics(model)
    assert trained  # sfcn has BatchNorm layers
    for shift in (0.0, 100.0):
        probe = copy.deepcopy(model)
        update_bn([torch.stack([item["image"] + shift for item in data.train])], probe)
        same = all(_statistics_close(v, trained[k]) for k, v in statistics(probe).items())
        assert same == (shift == 0.0), shift


@pytest.mark.parametrize("scans", [0, 3, 8, 50])
def test_batchnorm_is_recomputed_on_a_fixed_sample_of_the_training_scans(scans):
    """``training.batchnorm_scans`` scans drawn once from the fold's seed (all 8 when asked
    for more); 0 keeps the running averages."""
    import copy

    import torch
    from torch.optim.swa_utils import update_bn

    from loes.models import get_network
    from loes.pipeline.cross_validation.training import batchnorm_scans, recompute_batchnorm
    from loes.pipeline.run.config_loading import load_config

    config = load_config(overrides=[f"training.batchnorm_scans={scans}"])
    train = _random_fold().train
    sample = batchnorm_scans(train, scans, seed=5)
    assert len(sample) == min(scans, 8)
    assert list(sample.indices) == list(batchnorm_scans(train, scans, seed=5).indices)
    assert len(set(sample.indices)) == len(sample)
    if scans == 3:  # another fold's seed, another sample
        assert list(sample.indices) != list(batchnorm_scans(train, scans, seed=6).indices)
    model = get_network("sfcn", (32, 32, 32))
    expected = copy.deepcopy(model)
    seconds = recompute_batchnorm(model, sample, config, torch.device("cpu"))
    assert (seconds > 0) == bool(scans)
    if scans:
        update_bn([torch.stack([train[i]["image"] for i in sample.indices])], expected)
    for key, value in expected.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            assert _statistics_close(model.state_dict()[key], value), key
