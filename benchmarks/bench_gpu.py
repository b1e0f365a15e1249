"""The GPU path in one go (``python -m benchmarks gpu``, or ``benchmarks/gpu_check.sh`` which
sets up first): the GPU preset (``configs/gpu.yaml``: 1 mm, 160x192x160, the cohort cached on
the GPU, mixed precision) for a short schedule (2 folds x 2 epochs), then the same with
``torchrun`` DDP on every GPU present; prints samples per second, peak GPU memory, the
data-wait share of each epoch, and the conv3d throughput of one AlexNet3D training step
against the GPU's bf16 peak. Exits non-zero on any failure, and when there is no CUDA GPU.

The FLOPs of a step are counted by PyTorch (``torch.utils.flop_counter.FlopCounterMode``);
the peaks are the vendors' dense bf16 tensor-core figures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

#: dense bf16 tensor-core peak in TFLOP/s, by a part of the device name (vendor data sheets)
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
}
PRESET = Path(__file__).parents[1] / "configs" / "gpu.yaml"
SHORT = ["cv.folds=2", "cv.repeats=1", "training.epochs=2", "training.amp=true"]


def _peak(name: str) -> float | None:
    for part, peak in BF16_PEAK_TFLOPS.items():
        if part in name:
            return peak
    return None


def step_throughput(batch_size: int = 8) -> None:
    """One AlexNet3D training step at 160x192x160 in bf16: TFLOP/s against the peak."""
    from torch.utils.flop_counter import FlopCounterMode

    from loes.models import AlexNet3D

    device = torch.device("cuda")
    shape = (160, 192, 160)
    model = AlexNet3D.for_input_shape(shape).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    images = torch.randn(batch_size, 1, *shape, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(images).float().square().mean()
        loss.backward()
        optimizer.step()

    torch.backends.cudnn.benchmark = True
    for _ in range(3):  # cudnn picks its algorithms
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    torch.cuda.synchronize()
    start, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    tflops = counter.get_total_flops() / seconds / 1e12
    name = torch.cuda.get_device_name()
    peak = _peak(name)
    share = f", {tflops / peak:.0%} of the {peak:.0f} TFLOP/s bf16 peak" if peak else ""
    print(
        f"alexnet3d step, batch {batch_size} at 160x192x160 bf16: {seconds * 1e3:.0f} ms, "
        f"{counter.get_total_flops() / 1e12:.2f} TFLOP, {tflops:.0f} TFLOP/s{share} ({name})"
    )


def _epochs(run: Path, label: str, processes: int = 1) -> None:
    """Samples per second and the data-wait share of each epoch, from the folds' histories
    (rank 0's share under DDP, so samples count once per process)."""
    for history_file in sorted(run.glob("fold_*/history.csv")):
        history = pd.read_csv(history_file)
        for row in history.itertuples():
            seconds = row.data_seconds + row.compute_seconds
            print(
                f"{label} {history_file.parent.name} epoch {row.epoch}: "
                f"{row.samples * processes / seconds:.1f} samples/s, data wait "
                f"{row.data_seconds / seconds:.0%}, BatchNorm recomputation "
                f"{row.batchnorm_seconds:.1f} s, val MAE {row.val_mae:.2f}"
            )


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu: PyTorch sees no CUDA GPU; run this on a GPU machine.")
    from loes.pipeline import cross_validate, load_config

    gpus = torch.cuda.device_count()
    print(f"{gpus} GPU(s): {torch.cuda.get_device_name()}, torch {torch.__version__}")
    step_throughput()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "one-gpu"
        config = load_config(PRESET, [*SHORT, f"out={run}"])
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        report = cross_validate(config)
        print(
            f"one GPU: 2 folds x 2 epochs in {time.perf_counter() - start:.0f} s (cohort "
            f"generation and preprocessing included), peak GPU memory "
            f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, network MAE "
            f"{report['metrics']['network']['pooled']['mae']:.2f}"
        )
        _epochs(run, "one GPU")
        # torchrun on every GPU (with one GPU: the launcher alone, one process)
        run = Path(tmp) / "ddp"
        settings = Path(tmp) / "ddp.yaml"
        settings.write_text(load_config(PRESET, [*SHORT, f"out={run}"]).to_yaml())
        command = [sys.executable, "-m", "loes", "cv", "--config", str(settings)]
        command += ["--nproc", str(gpus)]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        print(
            f"torchrun, {gpus} process(es): 2 folds x 2 epochs in "
            f"{time.perf_counter() - start:.0f} s"
        )
        _epochs(run, f"DDP x{gpus}", processes=gpus)
        if gpus < 2:
            print("one GPU: DistributedDataParallel needs 2 or more; only the launcher ran")
