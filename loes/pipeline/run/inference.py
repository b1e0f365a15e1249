"""Batches in, Loes points out: the prediction loop shared by validation, testing and every
later use of a trained :class:`~loes.models.LoesModel`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader, ThreadDataLoader
from torch.utils.data import Dataset, Sampler

from loes.data.loes_items import MAX_LOES_SCORE
from loes.pipeline.run.device import autocast

__all__ = [
    "EvenBatchSampler",
    "anatomical_axis",
    "batches",
    "left_right_axis",
    "make_loader",
    "predict",
]


class EvenBatchSampler(Sampler[list[int]]):
    """Shuffled batches of near-equal size that cover every item once per epoch.

    ``ceil(n / batch_size)`` batches whose sizes differ by at most one (``np.array_split`` of a
    ``torch.randperm``): no scan is dropped, as ``drop_last`` would drop the same few of a small
    training set every epoch, and no batch is left with one scan, which BatchNorm trains on
    badly (or not at all, where its input has one value per channel): where ``batch_size`` >= 2
    would leave one (5 scans in batches of 2), there are fewer, larger batches (3 and 2).

    ``indices``: batch these item indices, in their order, instead of a fresh permutation of
    ``range(n)`` (``n`` is then their number): one rank's share of a
    ``torch.utils.data.DistributedSampler``
    (:func:`loes.pipeline.cluster.distributed.batch_sampler`).

    Examples::

        >>> [len(b) for b in EvenBatchSampler(17, batch_size=8)]
        [6, 6, 5]
        >>> [len(b) for b in EvenBatchSampler(5, batch_size=2)]
        [3, 2]
    """

    def __init__(self, n: int, batch_size: int, indices: Sampler[int] | None = None):
        self.n, self.batch_size, self.indices = n, batch_size, indices

    def __len__(self) -> int:
        batches = -(-self.n // self.batch_size)
        if self.batch_size > 1:
            batches = min(batches, max(1, self.n // 2))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        if self.indices is None:
            order = torch.randperm(self.n).numpy()
        else:
            order = np.fromiter(self.indices, dtype=np.int64)
        for batch in np.array_split(order, len(self)):
            yield batch.tolist()


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    device: torch.device,
    num_workers: int = 0,
    on_gpu: bool = False,
    batch_sampler: Sampler[list[int]] | None = None,
) -> DataLoader:
    """A MONAI ``ThreadDataLoader``: in order, or (``shuffle``) in the shuffled near-equal
    batches of :class:`EvenBatchSampler` (or of ``batch_sampler``, when given). A background
    thread makes the next batch (and runs the augmentation, with ``num_workers=0``) while the
    network computes on this one. ``on_gpu``: the items already live on the GPU (no workers,
    no pinning)."""
    if shuffle:
        batching = {"batch_sampler": batch_sampler or EvenBatchSampler(len(dataset), batch_size)}
    else:
        batching = {"batch_size": batch_size}
    return ThreadDataLoader(
        dataset,
        **batching,
        num_workers=0 if on_gpu else num_workers,
        pin_memory=device.type == "cuda" and not on_gpu,
    )


def batches(
    loader: DataLoader, device: torch.device, memory_format=torch.contiguous_format
) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict, float]]:
    """Yield (images (B, 1, D, H, W) on ``device`` in ``memory_format``, scores (B,) in Loes
    points, the batch dict, seconds spent waiting for the batch)."""
    iterator = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        images = (
            batch["image"]
            .as_subclass(torch.Tensor)
            .to(device, non_blocking=True, memory_format=memory_format)
        )
        scores = torch.as_tensor(batch["loes_score"], dtype=torch.float32, device=device)
        yield images, scores, batch, time.perf_counter() - start


def anatomical_axis(preprocessing: dict, direction: str) -> int:
    """The spatial axis of a model input that runs along ``direction`` (``"LR"``, ``"AP"`` or
    ``"SI"``), from the preprocessing settings (``LoesModel.spec["preprocessing"]``): in RAS and
    on the (RAS) template grid, 0, 1 and 2."""
    orientation = "RAS" if preprocessing.get("register") else preprocessing.get("orientation")
    return next(i for i, code in enumerate(str(orientation or "RAS").upper()) if code in direction)


def left_right_axis(preprocessing: dict) -> int:
    """The spatial axis of a model input that runs left-right: 0 in RAS and on the template
    grid (:func:`anatomical_axis`)."""
    return anatomical_axis(preprocessing, "LR")


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp: bool = True,
    memory_format: torch.memory_format = torch.contiguous_format,
    flip_axis: int | None = None,
    value_range: tuple[float, float] = (0.0, MAX_LOES_SCORE),
):
    """Scores for every scan ``loader`` yields, clipped to ``value_range`` (the scale's range
    [0, 34]; a change model's: [-34, 34]).

    Items need ``image``, ``loes_score``, ``subject`` and ``session``. The model is put into
    ``memory_format`` (see :func:`loes.pipeline.run.device.memory_format`), as are the batches.
    ``flip_axis``: a spatial axis (see :func:`left_right_axis`); the score is then the mean of
    the clipped scores of the scan and its mirror image along that axis (flip test-time
    augmentation, as nnU-Net's mirroring). Returns a DataFrame with columns ``subject, session,
    loes_score, predicted`` (Loes points), in loader order.
    """
    model.eval().to(memory_format=memory_format)
    rows = []
    for images, scores, batch, _ in batches(loader, device, memory_format):
        views = [images]
        if flip_axis is not None:
            views.append(images.flip(2 + flip_axis).contiguous(memory_format=memory_format))
        predicted = []
        for view in views:
            with autocast(device, amp):
                predicted.append(model(view).float().clamp(*value_range).double())
        predicted = torch.stack(predicted).mean(dim=0)
        for subject, session, true, pred in zip(
            batch["subject"], batch["session"], scores.tolist(), predicted.tolist(), strict=True
        ):
            rows.append(
                {"subject": subject, "session": session, "loes_score": true, "predicted": pred}
            )
    return pd.DataFrame(rows, columns=["subject", "session", "loes_score", "predicted"])
