"""Run the benchmarks and print their figures: ``python -m benchmarks [NAME ...]``."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys

import torch

import benchmarks


def main(names: list[str]) -> int:
    available = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    if {"-h", "--help"} & set(names):
        print(f"usage: python -m benchmarks [NAME ...]; names: {' '.join(available)} (all)")
        return 0
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available}", file=sys.stderr)
        return 2
    print(
        f"# machine: {platform.machine()} {platform.processor() or ''}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"cuda: {torch.cuda.is_available()}"
    )
    if not names:  # everything this machine can run: the GPU check needs a GPU
        names = [n for n in available if n != "gpu" or torch.cuda.is_available()]
    for name in names:
        print(f"\n## {name}")
        importlib.import_module(f"benchmarks.bench_{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
