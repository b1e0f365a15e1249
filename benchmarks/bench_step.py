"""One AlexNet3D training step at the CPU main job's size (batch 8, 72x88x72, AdamW, Huber loss)
per memory layout and allocator setting, against the fp32 matmul rate of the same machine; then
the step and the inference pass with and without fusion (``torch.compile``, inductor), compile
time counted.

Each variant runs in its own process (the allocator setting is process-wide and cannot be
undone; each compile starts from an empty inductor cache); the matmul rate is measured in each
of them, so every share is a ratio measured in one process, and a fused variant times the same
model eager first, so its speed-up is too. ``python -m benchmarks step``; on an AVX-512 CPU,
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks step`` emulates an AVX2
one (PyTorch's kernels, oneDNN's and inductor's generated code all follow it).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch
import torch._inductor.config
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

FUSED = {  # name: (memory layout, what runs)
    "channels_last_3d, training step": ("channels_last", "train"),
    "contiguous, training step": ("contiguous", "train"),
    "channels_last_3d, inference (eval, no_grad)": ("channels_last", "infer"),
    "contiguous, inference (eval, no_grad)": ("contiguous", "infer"),
    "contiguous, inference, frozen weights": ("contiguous", "frozen"),
}
#: training steps of the main job (``configs/cpu.yaml``): 10 epochs x 27 steps x 5 folds
MAIN_JOB_STEPS = 10 * 27 * 5
#: alternating eager and compiled steps of a fused variant (the ratio is their pairs' median)
FUSED_STEPS = 16
MAIN_JOB_FOLDS = 5
#: its inference batches of 8 in eval mode: per fold, 10 epochs x 5 validation batches, then
#: the test scans (6 batches) and their mirror; the BatchNorm recomputation's 8 batches an
#: epoch run in training mode, another graph
MAIN_JOB_INFERENCE = 5 * (10 * 5 + 2 * 6)


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


def _first_call(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _measure_fused(layout: str, what: str) -> dict:
    """Eager and ``torch.compile`` (inductor) of the same model in this process, alternating
    step by step: the best seconds per step of each; the first compiled call (compile
    included); a second model's first call (what every later fold pays: inductor's caches are
    warm); and the recompile a batch of another size costs (an epoch's last, smaller batch)."""
    keep_freed_memory()
    if what == "frozen":  # weights as constants: BatchNorm folded into the convolutions
        torch._inductor.config.freezing = True
        what = "infer"
    torch.manual_seed(0)
    fmt = torch.channels_last_3d if layout == "channels_last" else torch.contiguous_format
    images = torch.randn(BATCH, 1, *SPATIAL_SIZE).contiguous(memory_format=fmt)
    scores = torch.randn(BATCH)

    def build():
        model = get_network("alexnet3d", SPATIAL_SIZE).to(memory_format=fmt)
        return model.train() if what == "train" else model.eval()

    def stepper(model, forward, x=images):
        if what == "infer":

            def infer():
                with torch.no_grad():
                    forward(x)

            return infer
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            predicted = forward(x).squeeze(1)
            torch.nn.functional.huber_loss(predicted, scores[: len(x)]).backward()
            optimizer.step()

        return step

    model = build()
    eager = stepper(model, model)
    with FlopCounterMode(display=False) as counter:
        eager()
    eager()
    compiled = stepper(model, torch.compile(model))
    first = _first_call(compiled)
    compiled()
    # alternating, so that both see the same load from other processes
    eager_times, compiled_times = [], []
    for _ in range(FUSED_STEPS):
        eager_times.append(_first_call(eager))
        compiled_times.append(_first_call(compiled))
    eager_seconds, compiled_seconds = min(eager_times), min(compiled_times)
    other = build()
    second = _first_call(stepper(other, torch.compile(other)))
    smaller = images[: BATCH - 1]
    resized = _first_call(stepper(model, torch.compile(model), smaller))
    pairs = sorted(c / e for c, e in zip(compiled_times, eager_times, strict=True))
    return {
        "ratio": pairs[len(pairs) // 2],
        "eager": eager_seconds,
        "compiled": compiled_seconds,
        "compile": first - compiled_seconds,
        "compile_second": second - compiled_seconds,
        "recompile_batch": resized - compiled_seconds * (BATCH - 1) / BATCH,
        "gflop": counter.get_total_flops() / 1e9,
        "matmul": matmul_rate(),
    }


def _fusion_table() -> None:
    print(
        f"\nfusion: torch.compile (inductor, default mode); {FUSED_STEPS} eager and compiled "
        "steps alternating in one process: the best of each, and the median ratio of "
        "neighbours (compiled/eager); compile from an empty inductor cache"
    )
    print(
        f"{'variant':<46} {'eager s':>7} {'of mm':>6} {'fused s':>7} {'of mm':>6} "
        f"{'ratio':>6} {'compile s':>9} {'2nd model':>9} {'new batch':>9} {'break-even':>10}"
    )
    rows = {}
    for name, variant in FUSED.items():
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_step", json.dumps(variant)],
                capture_output=True,
                text=True,
                env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache},
            )
        if out.returncode:  # an inductor bug in one variant leaves the others to measure
            error = next((s for s in reversed(out.stderr.splitlines()) if "Error" in s), "")
            print(f"{name:<46} failed: {error[:120]}")
            continue
        r = rows[name] = json.loads(out.stdout.splitlines()[-1])
        saved = r["eager"] * (1 - r["ratio"])
        even = f"{r['compile'] / saved:,.0f} steps" if saved > 0 else "never"
        print(
            f"{name:<46} {r['eager']:7.3f} {r['gflop'] / r['eager'] / r['matmul']:6.0%} "
            f"{r['compiled']:7.3f} {r['gflop'] / r['compiled'] / r['matmul']:6.0%} "
            f"{r['ratio']:6.2f} {r['compile']:9.1f} {r['compile_second']:9.1f} "
            f"{r['recompile_batch']:9.1f} {even:>10}"
        )
    for name, r in rows.items():
        steps = MAIN_JOB_STEPS if FUSED[name][1] == "train" else MAIN_JOB_INFERENCE
        saved = steps * r["eager"] * (1 - r["ratio"])
        # folds 2-5 find both batch sizes' kernels in inductor's cache
        cost = r["compile"] + r["recompile_batch"] + (MAIN_JOB_FOLDS - 1) * r["compile_second"]
        print(
            f"main job ({steps} batches, {MAIN_JOB_FOLDS} folds in one process), {name}: "
            f"compiling saves {saved:.0f} s and costs {cost:.0f} s (net {saved - cost:+.0f} s)"
        )


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
    _fusion_table()


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    measure = _measure_fused if len(arguments) == 2 else _measure
    print(json.dumps(measure(*arguments)))
