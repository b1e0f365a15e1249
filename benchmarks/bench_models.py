"""Forward + backward time per sample of each registered network on this machine."""

from __future__ import annotations

import time

import torch

from loes.models import available_networks, get_network

SPATIAL_SIZE = (80, 96, 80)  # the CPU preset's 2 mm input
BATCH = 4


def _seconds_per_step(model: torch.nn.Module, batch: torch.Tensor, repeats: int = 3) -> float:
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        optimiser.zero_grad()
        model(batch).square().mean().backward()
        optimiser.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    torch.manual_seed(0)
    batch = torch.randn(BATCH, 1, *SPATIAL_SIZE)
    print(f"train step, batch {BATCH}, input {SPATIAL_SIZE}")
    print(f"{'network':<12} {'s/step':>8} {'samples/s':>10}")
    for name in available_networks():
        seconds = _seconds_per_step(get_network(name, SPATIAL_SIZE).train(), batch)
        print(f"{name:<12} {seconds:8.3f} {BATCH / seconds:10.1f}")
