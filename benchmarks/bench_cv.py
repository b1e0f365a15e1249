"""Cross-validation data flow: the cached pipeline against a naive loop that reloads and
preprocesses every NIfTI file every epoch."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import Compose, Lambdad
from torch.utils.data import Subset

from loes.data import load_dataset
from loes.data.synthetic import generate_cohort
from loes.pipeline.cohort import augmentation_for, preprocessing_for, scan_items
from loes.pipeline.config import load_config
from loes.pipeline.training import FoldData, train_fold

SUBJECTS = 8  # about 30 native 1 mm scans


def _counted(transform, counter: list[int]) -> Compose:
    def count(path):
        counter[0] += 1
        return path

    return Compose([Lambdad("image", count), transform]).flatten()  # flat: CacheDataset caches it


def main() -> None:
    preset = Path(__file__).parents[1] / "configs" / "cpu.yaml"
    main_job = load_config(preset)
    config = load_config(preset, ["training.epochs=1"])  # one epoch is enough to time one
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        table = load_dataset(
            generate_cohort(Path(tmp) / "cohort", SUBJECTS, workers=2, progress=False)
        )
        print(
            f"cohort: {len(table)} scans of {SUBJECTS} subjects "
            f"({time.perf_counter() - start:.0f} s)"
        )
        pre = preprocessing_for(config)
        aug = augmentation_for(config)
        items = scan_items(table)
        calls = [0]
        start = time.perf_counter()
        cache = CacheDataset(items, _counted(pre, calls), num_workers=2, progress=False)
        cache_seconds = time.perf_counter() - start
        half = len(items) // 2
        data = FoldData(
            train=Subset(cache, range(half, len(items))),
            val=Subset(cache, range(half)),
            test=Subset(cache, range(half)),
            train_scores=table["loes_score"].to_numpy()[half:],
            augment=aug,
        )
        _, history = train_fold(config, data, Path(tmp) / "fold", torch.device("cpu"), seed=0)
        row = history.iloc[-1]
        cached_epoch = row["data_seconds"] + row["compute_seconds"]

        naive_calls = [0]
        naive = Dataset(items[half:], transform=Compose([_counted(pre, naive_calls), aug]))
        start = time.perf_counter()
        for _ in DataLoader(naive, batch_size=config.training.batch_size, shuffle=True):
            pass
        naive_data = time.perf_counter() - start
        naive_epoch = naive_data + row["compute_seconds"]

    n = row["samples"]
    print(f"cache: {len(items)} scans preprocessed once in {cache_seconds:.1f} s")
    print(
        f"epoch, cached:  {cached_epoch:6.2f} s = data {row['data_seconds']:.2f} s "
        f"+ compute {row['compute_seconds']:.2f} s"
    )
    print(f"epoch, naive:   {naive_epoch:6.2f} s = data {naive_data:.2f} s + compute (same)")
    print(
        f"training samples per second, cached {n / cached_epoch:.1f}, naive {n / naive_epoch:.1f}"
    )
    print(f"naive / cached epoch time: {naive_epoch / cached_epoch:.1f}x")
    print(
        f"BatchNorm recomputed after each epoch: {row['batchnorm_seconds']:.2f} s "
        f"({row['batchnorm_seconds'] / cached_epoch:.0%} of a cached epoch)"
    )
    folds, epochs = main_job.cv.folds, main_job.training.epochs
    # the naive loop preprocesses every non-test scan every epoch of every fold, and each test
    # scan once; the cache preprocesses every scan once per run
    naive_per_run = round((1 - 1 / folds) * len(items)) * epochs * folds + len(items)
    print(
        f"preprocessing calls per run of the main job ({folds} folds x {epochs} epochs) for these "
        f"{len(items)} scans: cached {calls[0]}, naive {naive_per_run} "
        f"({naive_per_run / calls[0]:.0f}x)"
    )
