"""Training one fold: loss, optimiser, schedule, early stopping on the inner validation
subjects, atomic checkpoints and resumption.

After every epoch the BatchNorm statistics are recomputed with that epoch's weights on a
fixed random sample of the un-augmented training scans ("precise BN", Wu and Johnson 2021,
"Rethinking 'Batch' in BatchNorm"; ``torch.optim.swa_utils.update_bn``). The running averages
BatchNorm keeps while training lag behind weights that move fast near the one-cycle peak; on
the synthetic main job they sent the inner-validation MAE to 8-10 points in mid-run epochs,
and recomputing them lowered the pooled test MAE from 1.50 to 1.39.

Under ``torchrun`` several processes train the fold together with ``DistributedDataParallel``;
the few places where that differs call :mod:`loes.pipeline.cluster.distributed` (batches, rank
0's decisions and writes); every rank recomputes the BatchNorm statistics a one-process run
computes (:func:`recompute_batchnorm`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader
from monai.data import Dataset as TransformedDataset
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from loes.data.loes_items import MAX_LOES_SCORE
from loes.errors import LoesError
from loes.io import remove_temporaries
from loes.models import LoesModel
from loes.pipeline.cluster import distributed
from loes.pipeline.cross_validation.optimization import (
    SCORE_BIN,
    build_loss,
    build_optimizer,
    build_scheduler,
    score_weights,
)
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import (
    Stopwatch,
    amp_dtype,
    autocast,
    compiled,
    configure_cpu,
    memory_format,
)
from loes.pipeline.run.inference import EvenBatchSampler, batches, make_loader, predict
from loes.pipeline.run.messages import note
from loes.transforms import RandBatchAugmentation

__all__ = [
    "FoldData",
    "batchnorm_scans",
    "build_model",
    "load_checkpoint",
    "recompute_batchnorm",
    "seed_everything",
    "train_fold",
]


@dataclass
class FoldData:
    """The three sides of one fold, preprocessed; training applies ``augment`` to ``train``:
    to each scan in the data loader, or, a :class:`~loes.transforms.RandBatchAugmentation`, to
    each batch on the device."""

    train: Dataset
    val: Dataset
    test: Dataset
    train_scores: np.ndarray
    augment: Callable | None = None
    value_range: tuple[float, float] = (0.0, MAX_LOES_SCORE)
    """Range of the targets (Loes points) that predictions are clipped to: a change model's
    is [-34, 34]."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch. Not MONAI's ``set_determinism``, which also turns off
    ``cudnn.benchmark`` that GPU runs want."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds third-party code that uses it)
    torch.manual_seed(seed)


def build_model(config: Config, train_scores: np.ndarray) -> LoesModel:
    """The untrained :class:`~loes.models.LoesModel` that ``config`` describes, scaled to the
    mean and SD of ``train_scores`` (Loes points)."""
    return LoesModel(
        **config.model_spec(),
        score_mean=float(np.mean(train_scores)),
        score_std=float(np.std(train_scores)) or 1.0,
    )


def loader(dataset: Dataset, config: Config, shuffle: bool, device: torch.device) -> DataLoader:
    """The data loader ``config`` describes for ``dataset``; shuffled loaders deal each rank
    its share when several processes train together."""
    return make_loader(
        dataset,
        config.training.batch_size,
        shuffle,
        device,
        num_workers=config.training.num_workers,
        on_gpu=config.preprocessing.cache == "gpu",
        batch_sampler=(
            distributed.batch_sampler(len(dataset), config.training.batch_size)
            if shuffle and distributed.is_distributed()
            else None
        ),
    )


def _rng_state() -> dict:
    """The RNG states at the end of an epoch, for the record: every epoch reseeds from
    (seed, fold, epoch), so resuming does not need to restore them."""
    numpy_state = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_pos": int(numpy_state[2]),
        "python": repr(random.getstate()),
    }


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`train_fold` without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def batchnorm_scans(dataset: Dataset, n: int, seed: int) -> Dataset:
    """The ``n`` scans of ``dataset`` (all of them when it has fewer) on which the BatchNorm
    statistics are recomputed after every epoch of a fold: drawn once from ``seed``, so that
    the statistics change between epochs with the weights only, not with the sample."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[: min(n, len(dataset))].tolist())


def recompute_batchnorm(
    model: nn.Module, scans: Dataset, config: Config, device: torch.device
) -> float:
    """Recompute the BatchNorm statistics of ``model`` on ``scans`` with its current weights
    (``torch.optim.swa_utils.update_bn``: the average of the batches' statistics); returns
    seconds (0 when ``scans`` is empty: the running averages are kept).

    The batches are fixed: ``scans`` in order, in
    :class:`~loes.pipeline.run.inference.EvenBatchSampler` batches of ``training.batch_size``,
    on every rank of a ``torchrun`` group alike. So the statistics depend on the weights alone,
    not on the random state or the number of processes: every rank computes what a one-process
    run computes (each rank's share would give other batch statistics, and their average loses
    the variance between the shares). Each rank pays the whole sample's forward passes (no
    gradients): with ``configs/gpu.yaml`` on 8 GPUs, 64 scans where a rank trains on about 20
    an epoch; a smaller ``training.batchnorm_scans`` costs less there.
    """
    if len(scans) == 0:
        return 0.0
    watch = Stopwatch(device)
    layout = memory_format(device, config.training.memory_format)
    fixed = EvenBatchSampler(len(scans), config.training.batch_size, indices=range(len(scans)))
    order = make_loader(
        scans,
        config.training.batch_size,
        True,  # in the batches of ``fixed``
        device,
        num_workers=config.training.num_workers,
        on_gpu=config.preprocessing.cache == "gpu",
        batch_sampler=fixed,
    )
    images = (b[0] for b in batches(order, device, layout))
    with torch.no_grad(), autocast(device, config.training.mixed_precision):
        update_bn(images, model)
    return watch.seconds()


def _tensorboard(folder: Path):
    """A TensorBoard writer when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def _train_epoch(
    trainer: nn.Module,
    model: LoesModel,
    dataset: Dataset,
    weights: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    config: Config,
    device: torch.device,
    augment: Callable | None = None,
) -> dict[str, float]:
    """One pass over the training scans, each batch through ``augment`` (when given) on the
    device; returns the mean loss and where the time went."""
    t = config.training
    loss_fn = build_loss(t.loss)
    trainer.train()
    layout = memory_format(device, t.memory_format)
    watch, waiting, total_loss, seen = Stopwatch(device), 0.0, 0.0, 0
    for images, scores, _, wait in batches(loader(dataset, config, True, device), device, layout):
        waiting += wait
        if augment is not None:  # augmentation.where: batch; keeps the layout
            images = augment(images)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, t.mixed_precision):
            predicted = trainer(images).float()
        # the loss sees standardised scores, so Huber's delta and the lr do not depend on SD
        losses = loss_fn(predicted / model.std, scores / model.std)
        bins = torch.floor(scores / SCORE_BIN).long().clamp(0, len(weights) - 1)
        loss = (losses * weights[bins]).mean()
        scaler.scale(loss).backward()
        if t.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None and t.scheduler != "plateau":
            scheduler.step()
        total_loss += loss.item() * len(scores)
        seen += len(scores)
    return {
        "train_loss": total_loss / max(seen, 1),
        "data_seconds": waiting,
        "compute_seconds": watch.seconds() - waiting,
        "samples": seen,
    }


def _resume(last: Path, model, optimizer, scheduler, state: dict, t, label: str) -> dict:
    """Load model, optimiser and schedule from the fold's ``last.pt``; returns its counters."""
    checkpoint = load_checkpoint(last)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    state = {k: checkpoint[k] for k in state}
    done = state["epoch"] >= t.epochs or state["stale"] >= t.patience
    note(
        f"{label}: training finished at epoch {state['epoch']}; predicting"
        if done
        else f"{label}: resuming at epoch {state['epoch'] + 1}/{t.epochs}"
    )
    return state


def _early_stopping(
    state: dict, model: LoesModel, fold_dir: Path, epoch: int, val_mae: float
) -> None:
    """Model selection on the validation subjects: a better ``val_mae`` (Loes points) saves
    ``best.pt`` (rank 0) and resets the count of stale epochs, any other adds one to it; a NaN
    (nothing to validate on) saves every epoch, so the last one is kept, with
    ``selection="last epoch"`` in place of a validation MAE."""
    if val_mae < state["best_val_mae"] or np.isnan(val_mae):
        state.update(best_val_mae=val_mae, best_epoch=epoch, stale=0)
        chosen = {"selection": "last epoch"} if np.isnan(val_mae) else {"val_mae": val_mae}
        if distributed.is_main():
            model.save(fold_dir / "best.pt", epoch=epoch, **chosen)
    else:
        state["stale"] += 1
    state["epoch"] = epoch


def _save_last(last: Path, model: LoesModel, optimizer, scheduler, state: dict) -> None:
    """The checkpoint a killed fold resumes from: model, optimiser, schedule and counters."""
    model.save(
        last,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict() if scheduler is not None else {},
        rng=_rng_state(),
        **state,
    )


def _log_epoch(board, row: dict, epoch: int) -> None:
    """The epoch's loss, validation MAE and learning rate to TensorBoard, when it is on."""
    if board is not None:
        for key in ("train_loss", "val_mae", "lr"):
            board.add_scalar(key, row[key], epoch)


def train_fold(
    config: Config, data: FoldData, fold_dir: Path, device: torch.device, seed: int, label: str = ""
) -> tuple[LoesModel, pd.DataFrame]:
    """Train on ``data.train``, choose the epoch on ``data.val`` (the last epoch when
    ``data.val`` is empty: only the paired change model allows that); return the best model and the
    history (one row per epoch: ``epoch, val_mae`` in Loes points, ``lr``, ``train_loss``,
    ``samples``, and seconds spent waiting for data, computing, recomputing BatchNorm and
    validating).

    Writes ``fold_dir/best.pt`` (the best epoch's :class:`~loes.models.LoesModel`) and
    ``fold_dir/last.pt`` (the latest epoch's model, optimiser, schedule and counters) after
    every epoch, and resumes from ``last.pt`` when it exists. Under ``torchrun`` every rank
    calls it and trains, rank 0 alone writes, and every rank returns the best model."""
    t = config.training
    fold_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        remove_temporaries(fold_dir)  # a fold folder has one writer: this process
    configure_cpu()
    seed_everything(seed)
    layout = memory_format(device, t.memory_format)
    model = build_model(config, data.train_scores).to(device, memory_format=layout)
    aug = data.augment if isinstance(data.augment, RandBatchAugmentation) else None  # on device
    in_loader = data.augment if aug is None else None
    augmented = data.train if in_loader is None else TransformedDataset(data.train, in_loader)
    steps_per_epoch = len(loader(augmented, config, True, device))
    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, steps_per_epoch)
    weights = torch.as_tensor(
        score_weights(data.train_scores, t.reweight), dtype=torch.float32, device=device
    )
    fp16 = amp_dtype(device, t.mixed_precision) == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    state = {"epoch": 0, "best_val_mae": float("inf"), "best_epoch": 0, "stale": 0, "history": []}

    last = fold_dir / "last.pt"
    if last.exists():
        state = _resume(last, model, optimizer, scheduler, state, t, label)
    # the training step fused where it wins; checkpoints save ``model``, never the compiled one
    trainer = compiled(distributed.wrap(model, device), device, t.compile, t.deterministic)

    epochs = tqdm(
        range(state["epoch"], t.epochs),
        initial=state["epoch"],
        total=t.epochs,
        desc=f"{label} epochs",
        unit="epoch",
        leave=False,
        disable=None,
    )
    board = _tensorboard(fold_dir / "tensorboard") if distributed.is_main() else None
    bn_scans = batchnorm_scans(data.train, t.batchnorm_scans, seed)  # the same on every rank
    for epoch in epochs:
        if state["stale"] >= t.patience:
            break
        seed_everything(seed * 1000 + epoch)  # the same batches and augmentations after a resume
        if aug is not None:
            aug.set_random_state(seed * 1000 + epoch)
        try:
            stats = _train_epoch(
                trainer,
                model,
                augmented,
                weights,
                optimizer,
                scheduler,
                scaler,
                config,
                device,
                aug,
            )
        except torch._dynamo.exc.BackendCompilerFailed as error:  # training.compile
            raise LoesError(
                f"torch.compile failed ({str(error).strip().splitlines()[-1][:200]}); set "
                "training.compile=off, or delete inductor's cache (TORCHINDUCTOR_CACHE_DIR, by "
                "default /tmp/torchinductor_$USER) if a run killed while compiling broke it."
            ) from None
        stats["train_loss"] = distributed.mean(stats["train_loss"])
        stats["batchnorm_seconds"] = recompute_batchnorm(model, bn_scans, config, device)
        watch = Stopwatch(device)
        val_mae = float("nan")  # no validation items: every epoch is kept, the last one wins
        if len(data.val):
            val_loader = loader(data.val, config, False, device)
            val = predict(
                model, val_loader, device, t.mixed_precision, layout, value_range=data.value_range
            )
            val_mae = float(np.abs(val["predicted"] - val["loes_score"]).mean())
        stats["validation_seconds"] = watch.seconds()
        val_mae = distributed.broadcast(val_mae)  # one decision for every rank
        if scheduler is not None and t.scheduler == "plateau" and np.isfinite(val_mae):
            scheduler.step(val_mae)
        lr = optimizer.param_groups[0]["lr"]
        state["history"].append({"epoch": epoch + 1, "val_mae": val_mae, "lr": lr, **stats})
        _early_stopping(state, model, fold_dir, epoch + 1, val_mae)
        if distributed.is_main():
            _save_last(last, model, optimizer, scheduler, state)
        epochs.set_postfix(loss=f"{stats['train_loss']:.3f}", val_mae=f"{val_mae:.2f}")
        _log_epoch(board, state["history"][-1], epoch + 1)
    epochs.close()
    if board is not None:
        board.close()
    distributed.barrier()  # rank 0 has written best.pt
    model.load_state_dict(load_checkpoint(fold_dir / "best.pt")["model"])
    return model, pd.DataFrame(state["history"])
