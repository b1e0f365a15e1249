"""What training minimises and how it steps: losses, rare-score weights, optimisers and
learning-rate schedules, each built from the ``training`` section of the configuration."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn

from loes.data.loes_items import MAX_LOES_SCORE
from loes.pipeline.run.config import TrainingConfig

__all__ = [
    "MIN_SCHEDULED_EPOCHS",
    "SCORE_BIN",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "schedule_warning",
    "score_weights",
]

#: width of the score bins that loss reweighting counts, in Loes points
SCORE_BIN = 1.0


def score_weights(
    train_scores: np.ndarray, method: str, bin_width: float = SCORE_BIN
) -> np.ndarray:
    """Loss weight of each score bin ``[k * bin_width, (k + 1) * bin_width)`` that up-weights
    rare scores; the weights average 1 over the training samples.

    ``inverse``: 1 / the bin's frequency; ``lds``: 1 / the label density smoothed with a
    Gaussian kernel of 2 bins (label-distribution smoothing, Yang et al. 2021, ICML); ``none``:
    all ones. A weight is capped at 10 times the median sample weight.

    Raises:
        ValueError: for another ``method``.

    Examples::

        >>> score_weights(np.array([0, 0, 0, 5.0]), "inverse")[[0, 5]]
        array([0.57142857, 1.71428571])
    """
    n_bins = int(MAX_LOES_SCORE / bin_width) + 1
    if method == "none":
        return np.ones(n_bins)
    bins = np.floor(np.asarray(train_scores, dtype=float) / bin_width).astype(int)
    counts = np.bincount(bins, minlength=n_bins).astype(float)
    if method == "lds":
        counts = gaussian_filter1d(counts, sigma=2.0, mode="constant")
    elif method != "inverse":
        raise ValueError(f"unknown reweighting {method!r}; use none, inverse or lds.")
    weights = 1.0 / np.maximum(counts, 1e-6)
    weights = np.minimum(weights, 10 * np.median(weights[bins]))  # no lonely score dominates
    return weights / weights[bins].mean()


def build_loss(name: str) -> nn.Module:
    """``mse``, ``l1`` or ``huber`` (delta 1) with ``reduction="none"``, so samples can be
    weighted."""
    losses = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}
    return losses[name](reduction="none")


def build_optimizer(model: nn.Module, t: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW (Loshchilov and Hutter 2019), or SGD with Nesterov momentum 0.9."""
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=t.lr, momentum=0.9, nesterov=True, weight_decay=t.weight_decay
        )
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, t: TrainingConfig, steps_per_epoch: int):
    """The learning-rate schedule, or None.

    ``cosine`` and ``onecycle`` (Smith and Topin 2019: from lr/25 up to ``lr`` over 30% of the
    steps, then down to lr/1e4) step once per batch over ``epochs * steps_per_epoch`` steps;
    ``plateau`` halves the rate after 3 epochs without a better validation MAE.
    """
    total = t.epochs * steps_per_epoch
    if t.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if t.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=t.lr, total_steps=total)
    if t.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    return None


#: fewer epochs than this leave a per-step schedule no room to warm up and anneal
MIN_SCHEDULED_EPOCHS = 5


def schedule_warning(t: TrainingConfig) -> str | None:
    """A sentence saying why ``t``'s schedule is too short to mean anything, or None.

    One-cycle and cosine schedules spend the first epochs warming up and the last ones near a
    learning rate of zero; with 2 epochs one-cycle logs 4e-09 then 8e-04 and the network ends
    up predicting about the same score for every scan.
    """
    if t.scheduler in {"onecycle", "cosine"} and t.epochs < MIN_SCHEDULED_EPOCHS:
        return (
            f"training.epochs={t.epochs} is too short for the {t.scheduler} schedule (at least "
            f"{MIN_SCHEDULED_EPOCHS}); the network will barely learn, so treat this as a smoke "
            "run whose results say nothing about the model."
        )
    return None
