import numpy as np
import pytest
import torch

from loes.pipeline.cross_validation.optimization import (
    MIN_SCHEDULED_EPOCHS,
    build_loss,
    build_optimizer,
    build_scheduler,
    schedule_warning,
    score_weights,
)
from loes.pipeline.run.config import TrainingConfig


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


def test_a_lonely_score_is_capped_at_ten_times_the_median_weight():
    scores = np.concatenate([np.zeros(200), [30.0]])
    weights = score_weights(scores, "inverse")
    assert weights[30] / weights[0] == pytest.approx(10.0)


def test_no_reweighting_is_uniform_and_unknown_is_rejected():
    assert np.all(score_weights(np.array([0.0, 9.0]), "none") == 1.0)
    assert len(score_weights(np.array([0.0]), "none")) == 35  # bins 0..34
    with pytest.raises(ValueError, match="unknown reweighting 'rare'"):
        score_weights(np.array([0.0]), "rare")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("mse", [0.25, 4.0]), ("l1", [0.5, 2.0]), ("huber", [0.125, 1.5])],
)
def test_losses_are_per_sample(name, expected):
    loss = build_loss(name)(torch.tensor([0.5, 2.0]), torch.zeros(2))
    torch.testing.assert_close(loss, torch.tensor(expected))


def _parameters():
    return torch.nn.Linear(2, 1)


def test_optimizers():
    adamw = build_optimizer(_parameters(), TrainingConfig(lr=0.01, weight_decay=0.1))
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["lr"] == 0.01
    assert adamw.defaults["weight_decay"] == 0.1
    sgd = build_optimizer(_parameters(), TrainingConfig(optimizer="sgd", lr=0.1))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9
    assert sgd.defaults["nesterov"]


def _lrs(config: TrainingConfig, steps_per_epoch: int = 10) -> list[float]:
    optimizer = build_optimizer(_parameters(), config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(config.epochs * steps_per_epoch - 1):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_one_cycle_warms_up_to_lr_over_30_percent_then_anneals():
    lrs = _lrs(TrainingConfig(epochs=10, lr=1e-3, scheduler="onecycle"))
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-3 / 25)
    assert max(lrs) == pytest.approx(1e-3)
    assert int(np.argmax(lrs)) == 29  # the end of the first 30% of steps
    assert lrs[-1] == pytest.approx(1e-3 / 25 / 1e4)
    assert np.all(np.diff(lrs[:30]) > 0)
    assert np.all(np.diff(lrs[29:]) < 0)


def test_cosine_halves_at_mid_run_and_ends_near_zero():
    lrs = _lrs(TrainingConfig(epochs=5, lr=0.1, scheduler="cosine"))
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[25] == pytest.approx(0.05)
    assert lrs[-1] == pytest.approx(0.1 * (1 + np.cos(np.pi * 49 / 50)) / 2)


def test_plateau_halves_after_three_epochs_without_improvement():
    config = TrainingConfig(lr=0.1, scheduler="plateau")
    optimizer = build_optimizer(_parameters(), config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=10)
    lrs = []
    for val_mae in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
        scheduler.step(val_mae)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1, 0.05])


def test_no_schedule():
    optimizer = build_optimizer(_parameters(), TrainingConfig())
    assert build_scheduler(optimizer, TrainingConfig(scheduler="none"), 10) is None


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_a_schedule_too_short_to_mean_anything_is_named(scheduler):
    short = TrainingConfig(scheduler=scheduler, epochs=MIN_SCHEDULED_EPOCHS - 1)
    assert f"training.epochs={MIN_SCHEDULED_EPOCHS - 1} is too short" in schedule_warning(short)
    assert (
        schedule_warning(TrainingConfig(scheduler=scheduler, epochs=MIN_SCHEDULED_EPOCHS)) is None
    )
    assert schedule_warning(TrainingConfig(scheduler="none", epochs=1)) is None
