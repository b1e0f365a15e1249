"""The training augmentation at the main job's size (72x88x72, default ``augmentation()``
settings): seconds per scan of MONAI's per-scan transforms (``augmentation.where: loader``)
against :class:`loes.transforms.RandBatchAugmentation` on batches of 8 (``where: batch``), on
the CPU and, when there is one, on the GPU; then the share of a training epoch spent waiting
for data, and the epoch's seconds, with each path on the CPU (AlexNet3D, batch 8, 16 random
scans; no workers, as with ``preprocessing.cache: gpu``, and 2). ``python -m benchmarks augment``.

Wall-clock seconds depend on what else the machine runs; CPU seconds (the process's, all
threads) count the work done and hold on a shared machine."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from monai.data import MetaTensor

from loes.pipeline.cross_validation.cohort import augmentation_for
from loes.pipeline.cross_validation.training import FoldData, train_fold
from loes.pipeline.run.config_loading import load_config
from loes.pipeline.run.device import configure_cpu, synchronize
from loes.transforms import RandBatchAugmentation, augmentation

SPATIAL_SIZE = (72, 88, 72)
PIXDIM = (2.0, 2.0, 2.0)
BATCH = 8
REPEATS = 5  # batches (or 8 scans) per measurement; the median is printed
TRAIN_SCANS, EPOCHS, ROUNDS = 16, 2, 3


def _brain(n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """(n, 1, 72, 88, 72) z-scored-looking volumes: a noisy ellipsoid on a zero background."""
    grids = torch.meshgrid(*(torch.linspace(-1, 1, s) for s in SPATIAL_SIZE), indexing="ij")
    inside = sum(g**2 for g in grids) < 0.8
    noise = torch.randn(n, 1, *SPATIAL_SIZE, generator=torch.Generator().manual_seed(seed))
    return ((noise + 1.0) * inside).to(device)


def _median_seconds(run, device: torch.device, repeats: int = REPEATS) -> tuple[float, float]:
    """The median wall-clock seconds of ``run()`` and its median CPU seconds (this process's,
    every thread: the work done, which other processes on the machine do not inflate)."""
    run()  # warm-up: caches, kernels
    wall, cpu = [], []
    for _ in range(repeats):
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        synchronize(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def per_scan_seconds(device: torch.device) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds per scan of each path on ``device``: medians of REPEATS batches."""
    images = _brain(BATCH, device)
    monai = augmentation(pixdim=PIXDIM, spatial_size=SPATIAL_SIZE).set_random_state(seed=0)
    items = [{"image": MetaTensor(image)} for image in images]

    def per_scan():
        for item in items:
            monai(dict(item))

    figures = {"MONAI per scan (loader)": _median_seconds(per_scan, device)}
    for indexed in (True, False):
        batch = RandBatchAugmentation(indexed=indexed, pixdim=PIXDIM).set_random_state(0)
        name = "picked scans only" if indexed else "every scan, torch.where"
        default = " (default here)" if indexed == (device.type == "cpu") else ""
        figures[f"batch of {BATCH} ({name}){default}"] = _median_seconds(
            lambda b=batch: b(images), device
        )
    return {name: (wall / BATCH, cpu / BATCH) for name, (wall, cpu) in figures.items()}


def _fold(n: int) -> FoldData:
    """``n`` training and 4 validation scans of random volumes with random scores."""
    images = _brain(n + 4, torch.device("cpu"), seed=1)
    scores = torch.linspace(0, 20, n + 4)
    items = [
        {"image": image, "loes_score": float(s), "subject": f"s{i}", "session": "1"}
        for i, (image, s) in enumerate(zip(images, scores, strict=True))
    ]
    return FoldData(train=items[:n], val=items[n:], test=items[n:], train_scores=scores[:n].numpy())


def _epoch(where: str, workers: int) -> dict[str, float]:
    config = load_config(
        Path(__file__).parents[1] / "configs" / "cpu.yaml",
        overrides=[
            f"augmentation.where={where}",
            f"training.epochs={EPOCHS}",
            f"training.num_workers={workers}",
            "training.batchnorm_scans=8",
        ],
    )
    data = _fold(TRAIN_SCANS)
    data.augment = augmentation_for(config)
    start_cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        _, history = train_fold(config, data, Path(tmp), torch.device("cpu"), seed=0)
    train = history["data_seconds"] + history["compute_seconds"]
    return {
        "data-wait share": (history["data_seconds"] / train).mean(),
        "epoch training wall s": train.mean(),
        "fold CPU s per epoch": (time.process_time() - start_cpu) / len(history),
    }


def epoch_shares(rounds: int = ROUNDS) -> pd.DataFrame:
    """Per path on the CPU, medians of ``rounds`` interleaved runs: the data-wait share of an
    epoch's training time, the wall seconds of an epoch's training (waiting plus steps, the
    batch path's augmentation in the steps), and the CPU seconds of the fold per epoch
    (validation and BatchNorm recomputation included, the same for all; the work of worker
    processes is not counted, so that column is left out for them)."""
    paths = [("loader", 0), ("batch", 0), ("loader", 2)]
    runs: dict = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            runs[path].append(_epoch(*path))
    rows = []
    for (where, workers), results in runs.items():
        row = pd.DataFrame(results).median().to_dict()
        if workers:
            row["fold CPU s per epoch"] = float("nan")
        rows.append({"augmentation.where": where, "workers": workers, **row})
    return pd.DataFrame(rows)


def main() -> None:
    threads = configure_cpu()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"augmentation at {SPATIAL_SIZE} voxels, default settings, {threads} CPU threads "
        f"(load average {load} on {os.cpu_count()} CPUs: wall seconds count the waits for them)"
    )
    print(
        f"{'device':<7} {'path':<52} {'wall s/scan':>11} {'vs MONAI':>8} {'CPU s/scan':>10} "
        f"{'vs MONAI':>8}"
    )
    for device in devices:
        figures = per_scan_seconds(device)
        wall_ref, cpu_ref = figures["MONAI per scan (loader)"]
        for name, (wall, cpu) in figures.items():
            print(
                f"{device.type:<7} {name:<52} {wall:11.4f} {wall_ref / wall:7.2f}x {cpu:10.4f} "
                f"{cpu_ref / cpu:7.2f}x"
            )
    print(
        f"\ntraining epochs on the CPU: AlexNet3D, batch {BATCH}, {TRAIN_SCANS} scans, "
        f"{EPOCHS} epochs, medians of {ROUNDS} interleaved runs"
    )
    print(epoch_shares().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
