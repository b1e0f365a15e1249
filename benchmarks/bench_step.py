"""One AlexNet3D training step at the CPU main job's size (batch 8, 72x88x72, AdamW, Huber loss)
per memory layout and allocator setting, against the fp32 matmul rate of the same machine.

Each variant runs in its own process (the allocator setting is process-wide and cannot be
undone); the matmul rate is measured in each of them, so every share is a ratio measured in
one process. ``python -m benchmarks step``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from loes.models import get_network
from loes.pipeline.run.device import keep_freed_memory

SPATIAL_SIZE = (72, 88, 72)
BATCH = 8
STEPS = 8
VARIANTS = {  # name: (memory layout, keep freed memory, bf16 autocast)
    "contiguous, default malloc (before)": ("contiguous", False, False),
    "channels_last_3d, default malloc": ("channels_last", False, False),
    "contiguous, kept memory": ("contiguous", True, False),
    "channels_last_3d, kept memory (loes cv on a CPU)": ("channels_last", True, False),
    "channels_last_3d, kept memory, bf16 autocast (never used)": ("channels_last", True, True),
}


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """fp32 GFLOP/s of an n x n matmul, the best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _measure(layout: str, keep: bool, bf16: bool) -> dict:
    if keep:
        keep_freed_memory()
    torch.manual_seed(0)
    fmt = torch.channels_last_3d if layout == "channels_last" else torch.contiguous_format
    model = get_network("alexnet3d", SPATIAL_SIZE).train().to(memory_format=fmt)
    images = torch.randn(BATCH, 1, *SPATIAL_SIZE).contiguous(memory_format=fmt)
    scores = torch.randn(BATCH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            predicted = model(images).float().squeeze(1)
        torch.nn.functional.huber_loss(predicted, scores).backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    step()
    before, times = resource.getrusage(resource.RUSAGE_SELF), []
    for _ in range(STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": min(times),
        "gflop": counter.get_total_flops() / 1e9,
        "faults": (after.ru_minflt - before.ru_minflt) / STEPS,
        "system": (after.ru_stime - before.ru_stime) / STEPS,
        "matmul": matmul_rate(),
        "peak_rss_gb": after.ru_maxrss / 2**20,
    }


def main() -> None:
    print(
        f"train step: AlexNet3D, batch {BATCH}, input {SPATIAL_SIZE}, AdamW + Huber, "
        f"{torch.get_num_threads()} threads, best of {STEPS} steps after one warm-up"
    )
    print(
        f"{'variant':<58} {'s/step':>7} {'GFLOP/s':>8} {'of matmul':>9} "
        f"{'faults/step':>11} {'sys s/step':>10} {'peak RSS':>8}"
    )
    rows = {}
    for name, variant in VARIANTS.items():
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_step", json.dumps(variant)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = rows[name] = json.loads(out.stdout)
        rate = r["gflop"] / r["seconds"]
        print(
            f"{name:<58} {r['seconds']:7.3f} {rate:8.0f} {rate / r['matmul']:9.0%} "
            f"{r['faults']:11,.0f} {r['system']:10.3f} {r['peak_rss_gb']:6.2f} GB"
        )
    first, *_, ours, _ = rows.values()
    ratio = ours["seconds"] / first["seconds"]
    print(
        f"{first['gflop']:.1f} GFLOP per step (torch.utils.flop_counter); matmul rate "
        f"{ours['matmul']:.0f} GFLOP/s; loes's step takes {ratio:.2f}x the time of the "
        "contiguous, default-malloc step"
    )


if __name__ == "__main__":
    print(json.dumps(_measure(*json.loads(sys.argv[1]))))
