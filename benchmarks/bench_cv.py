"""One fold of the CPU main job (``configs/cpu.yaml``, its synthetic cohort) as ``loes cv`` runs
it: where each second of an epoch goes (waiting for data, computing, recomputing BatchNorm,
validating) and the fold's time, then the cached data flow against a naive loop that reloads
and preprocesses every NIfTI file every epoch. ``python -m benchmarks cv``."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from loes.data import make_folds
from loes.pipeline.cross_validation.cohort import augmentation_for, preprocess_cohort
from loes.pipeline.cross_validation.fold import run_fold
from loes.pipeline.run.config_loading import load_config
from loes.pipeline.run.data import load_table, preprocessing_for, scan_items
from loes.pipeline.run.device import configure_cpu, memory_format

PARTS = {
    "data_seconds": "waiting for data",
    "compute_seconds": "training steps",
    "batchnorm_seconds": "BatchNorm recomputation",
    "validation_seconds": "validation",
}


def main() -> None:
    preset = Path(__file__).parents[1] / "configs" / "cpu.yaml"
    config = load_config(preset)
    device = torch.device("cpu")
    threads = configure_cpu()
    print(
        f"main job, fold 0 of {config.cv.folds}: {config.model.name}, "
        f"{config.training.epochs} epochs, batch {config.training.batch_size}, "
        f"{list(config.preprocessing.spatial_size)} voxels at {config.preprocessing.pixdim[0]:g} "
        f"mm, {threads} threads, layout {memory_format(device, config.training.memory_format)}"
    )
    table = load_table(config)
    cohort = preprocess_cohort(table, config, device)
    fold = make_folds(table, n_folds=config.cv.folds, seed=config.seed).folds[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metrics = run_fold(cohort, fold, config, Path(tmp) / "fold", device)
        fold_seconds = time.perf_counter() - start
        history = pd.read_csv(Path(tmp) / "fold" / "history.csv")

    epochs = history[list(PARTS)]
    total = epochs.sum(axis=1)
    print(f"{'per epoch':<26} {'mean s':>7} {'share':>6} {'max share':>9}")
    for column, name in PARTS.items():
        share = epochs[column] / total
        print(f"{name:<26} {epochs[column].mean():7.2f} {share.mean():6.1%} {share.max():9.1%}")
    print(f"{'epoch':<26} {total.mean():7.2f}")
    print(
        f"fold: {fold_seconds:.0f} s for {len(history)} epochs of {history['samples'].iloc[0]} "
        f"training scans ({metrics['network']['mae']:.2f} MAE); the main job runs "
        f"{config.cv.folds} such folds"
    )

    # the naive data flow: every training scan read and preprocessed again every epoch
    train = cohort.indices(fold.train)
    items = [scan_items(table)[i] for i in train]
    naive = Dataset(items, transform=Compose([preprocessing_for(config), augmentation_for(config)]))
    start = time.perf_counter()
    for _ in DataLoader(naive, batch_size=config.training.batch_size, shuffle=True):
        pass
    naive_data = time.perf_counter() - start
    cached = total.mean()
    naive_epoch = naive_data + cached - epochs["data_seconds"].mean()
    print(
        f"naive epoch (reload and preprocess every scan): {naive_epoch:.1f} s, "
        f"{naive_epoch / cached:.1f}x the cached epoch"
    )
