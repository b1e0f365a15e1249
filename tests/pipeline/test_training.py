import numpy as np
import pytest

from loes.pipeline.training import score_weights


def test_inverse_weights_favour_rare_scores_and_average_one():
    scores = np.array([0, 0, 0, 0, 0.5, 3, 3, 12.0])
    weights = score_weights(scores, "inverse")
    per_sample = weights[np.floor(scores).astype(int)]
    assert per_sample.mean() == pytest.approx(1.0)
    assert weights[12] > weights[3] > weights[0]
    assert weights[12] / weights[0] == pytest.approx(5.0)  # 5 scans in bin 0, 1 in bin 12


def test_lds_shares_density_between_neighbouring_scores():
    scores = np.concatenate([np.zeros(4), np.full(3, 4.0), [10.0, 11.0, 20.0]])
    inverse = score_weights(scores, "inverse")
    lds = score_weights(scores, "lds")
    per_sample = lds[np.floor(scores).astype(int)]
    assert per_sample.mean() == pytest.approx(1.0)
    # 11 has a neighbour at 10 and 20 has none: equal under inverse, not under smoothing
    assert inverse[11] == pytest.approx(inverse[20])
    assert lds[11] < lds[20]


def test_no_reweighting_is_uniform_and_unknown_is_rejected():
    assert np.all(score_weights(np.array([0.0, 9.0]), "none") == 1.0)
    with pytest.raises(ValueError, match="unknown reweighting 'rare'"):
        score_weights(np.array([0.0]), "rare")


def _random_fold(n: int = 12, size=(32, 32, 32)):
    import torch

    from loes.pipeline.training import FoldData

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


@pytest.mark.parametrize(
    "options",
    [
        ["training.loss=mse", "training.scheduler=cosine", "training.optimizer=sgd"],
        ["training.loss=l1", "training.scheduler=plateau", "training.reweight=inverse"],
        ["training.loss=huber", "training.scheduler=onecycle", "training.reweight=lds"],
        ["training.scheduler=none", "training.grad_clip=0", "model.dropout=0.1"],
    ],
)
def test_every_training_option_trains_and_checkpoints(tmp_path, options):
    import torch

    from loes.pipeline.config import load_config
    from loes.pipeline.training import load_checkpoint, train_fold

    config = load_config(
        overrides=[
            "model.name=sfcn",
            "preprocessing.spatial_size=[32, 32, 32]",
            "training.epochs=3",
            "training.batch_size=4",
            "training.lr=0.01",
            *options,
        ]
    )
    _, history = train_fold(config, _random_fold(), tmp_path, torch.device("cpu"), seed=0)
    assert list(history["epoch"]) == [1, 2, 3]
    assert np.isfinite(history[["train_loss", "val_mae"]].to_numpy()).all()
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["val_mae"] == pytest.approx(history["val_mae"].min())
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


def test_early_stopping_uses_patience(tmp_path):
    import torch

    from loes.pipeline.config import load_config
    from loes.pipeline.training import train_fold

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


def test_tensorboard_logs_every_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from loes.pipeline.config import load_config
    from loes.pipeline.training import train_fold

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


def test_batchnorm_statistics_come_from_the_unaugmented_training_scans(tmp_path):
    """After every epoch BatchNorm is recomputed on the training scans as preprocessed: an
    augmentation that shifts intensities by 100 must not reach the statistics."""
    import copy

    import torch
    from torch.optim.swa_utils import update_bn

    from loes.pipeline.config import load_config
    from loes.pipeline.training import train_fold

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

    def statistics(module):
        return {k: v for k, v in module.state_dict().items() if k.endswith(("_mean", "_var"))}

    trained = statistics(model)
    assert trained  # sfcn has BatchNorm layers
    for shift in (0.0, 100.0):
        probe = copy.deepcopy(model)
        update_bn([torch.stack([item["image"] + shift for item in data.train])], probe)
        same = all(
            torch.allclose(v, trained[k], rtol=1e-4, atol=1e-5)
            for k, v in statistics(probe).items()
        )
        assert same == (shift == 0.0), shift
