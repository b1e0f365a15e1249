"""The device settings: memory layout, threads from the CPUs a process may use, and the
allocator that keeps freed memory."""

import shutil
import subprocess
import sys

import pytest
import torch

from loes.pipeline.run.device import memory_format


def _run(code: str, *prefix: str, env: dict | None = None) -> str:
    """stdout of ``code`` in a fresh interpreter (process-wide settings stay out of pytest)."""
    out = subprocess.run(
        [*prefix, sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def test_auto_layout_is_channels_last_on_cpu_and_contiguous_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert memory_format(cpu) is torch.channels_last_3d
    assert memory_format(cuda) is torch.contiguous_format
    assert memory_format(cuda, "channels_last") is torch.channels_last_3d
    assert memory_format(cpu, "contiguous") is torch.contiguous_format


@pytest.mark.parametrize("network", ["alexnet3d", "sfcn"])
def test_both_layouts_compute_the_float64_outputs_and_gradients(network):
    """Each float32 layout against the same network in float64 (NCDHW): the outputs within
    2e-4 of their scale and the whole gradient within 5% of its norm.

    Float32 rounding is relative to the magnitudes summed: the outputs' scale, not each output
    (measured up to 2.4e-5 of it: SFCN's train-mode BatchNorm over 24 values a channel in the
    last block amplifies it). The early convolutions' weight gradients sum ~1e6 products that
    BatchNorm's backward nearly cancels: they round to ~1% of their norm (measured up to 0.89%,
    channels_last with one thread, AVX2 or no vector ISA). Other dropout masks or a mirrored
    input move both by 20-140%; one of the 1.1e6 input voxels set to 3 moves the outputs by
    1.9e-3 (AlexNet3D) to 1.2e-2 (SFCN) of their scale and the gradient by 6% to 21%."""
    import copy

    from loes.models import get_network

    torch.manual_seed(0)
    network = get_network(network, (72, 72, 72)).train()
    images = torch.randn(3, 1, 72, 72, 72)

    def run(dtype, fmt):
        model = copy.deepcopy(network).to(dtype=dtype, memory_format=fmt)
        x = images.to(dtype).contiguous(memory_format=fmt)
        assert x.is_contiguous(memory_format=fmt)
        torch.manual_seed(1)  # the same dropout masks
        out = model(x)
        out.square().sum().backward()
        return out.double(), torch.cat([p.grad.double().flatten() for p in model.parameters()])

    out64, grad64 = run(torch.float64, torch.contiguous_format)
    for fmt in (torch.contiguous_format, torch.channels_last_3d):
        out, grad = run(torch.float32, fmt)
        scale = out64.abs().max().item()
        torch.testing.assert_close(out, out64, rtol=2e-4, atol=2e-4 * scale)
        assert torch.linalg.vector_norm(grad - grad64) <= 5e-2 * torch.linalg.vector_norm(grad64)


@pytest.mark.skipif(not shutil.which("taskset"), reason="needs taskset (util-linux)")
def test_threads_follow_the_cpus_the_process_may_use():
    code = (
        "from loes.pipeline.run.device import available_cpus, configure_cpu; "
        "print(available_cpus(), configure_cpu())"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    assert _run(code, "taskset", "-c", "0", env=env) == "1 1"
    assert _run(code, env={**env, "OMP_NUM_THREADS": "1"}).split()[1] == "1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_stops_page_faults_of_large_tensors():
    """A 64 MB tensor allocated and freed ten times: by default each one is a fresh mmap whose
    16,000 pages fault in again; with the memory kept, far fewer do."""
    code = """
import resource, sys, torch
from loes.pipeline.run.device import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.ones(2**24)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(2**24)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    default = _run(code.replace("sys.argv[1]", "'default'")).split()
    kept = _run(code.replace("sys.argv[1]", "'keep'")).split()
    assert default[0] == "False"
    assert kept[0] == "True"
    pages = 2**24 * 4 // 4096
    assert int(default[1]) >= 10 * pages * 0.9
    # usually at most the first allocation faults in; on a loaded machine the kernel was seen
    # to fault in some kept pages again (6 of 10 allocations' worth once), never most of them
    assert int(kept[1]) <= int(default[1]) * 0.7


def test_each_rank_takes_its_share_of_the_jobs_cores_not_the_whole_task():
    """Two torchrun ranks on a 2-core SLURM task whose script exported
    ``OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK`` (2): each takes one thread and passes one on."""
    code = (
        "import os; from loes.pipeline.run.device import configure_cpu; "
        "print(configure_cpu(), os.environ['OMP_NUM_THREADS'])"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    task = {"SLURM_CPUS_PER_TASK": "2", "OMP_NUM_THREADS": "2", "LOCAL_WORLD_SIZE": "2"}
    prefix = ("taskset", "-c", "0,1") if shutil.which("taskset") else ()
    assert _run(code, *prefix, env={**env, **task}) == "1 1"
    # one process: the whole task; a request for fewer threads than the share is kept
    assert _run(code, *prefix, env={**env, **task, "LOCAL_WORLD_SIZE": "1"}) == "2 2"
    assert _run(code, *prefix, env={**env, **task, "OMP_NUM_THREADS": "1"}) == "1 1"


def test_the_jobs_cores_are_its_affinity_capped_at_slurms_count(monkeypatch):
    from loes.pipeline.run.device import available_cpus, job_cpus, threads_per_rank

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert job_cpus() == available_cpus()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert job_cpus() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(available_cpus() + 8))
    assert job_cpus() == available_cpus()  # a node without CPU binding: the mask still counts
    assert threads_per_rank(16, 4) == 4
    assert threads_per_rank(16, 4, requested=16) == 4  # the whole task's count, per rank
    assert threads_per_rank(16, 4, requested=3) == 3
    assert threads_per_rank(3, 4) == 1
    assert threads_per_rank(3, 4, requested=8) == 1


@pytest.mark.parametrize(
    ("capability", "native_bf16", "expected"),
    [
        ((9, 0), True, torch.bfloat16),  # H100
        ((8, 0), None, torch.bfloat16),  # A100 on a PyTorch without including_emulation
        ((8, 6), None, torch.bfloat16),
        ((7, 0), False, torch.float16),  # V100: bf16 only emulated
        ((7, 5), False, torch.float16),  # T4
        ((7, 5), None, torch.float16),
        ((6, 1), False, None),  # Pascal: no tensor cores, float32
        ((6, 0), None, None),
    ],
)
def test_mixed_precision_is_bf16_only_where_the_gpu_computes_it(capability, native_bf16, expected):
    from loes.pipeline.run.device import amp_dtype, mixed_precision_dtype

    assert mixed_precision_dtype(capability, native_bf16) is expected
    assert amp_dtype(torch.device("cpu")) is None  # never on a CPU
    assert amp_dtype(torch.device("cuda"), enabled=False) is None


def test_the_stopwatch_reads_seconds_of_the_work_since_its_start():
    from loes.pipeline.run.device import Stopwatch

    watch = Stopwatch(torch.device("cpu"))
    first = watch.seconds()
    torch.ones(256, 256) @ torch.ones(256, 256)
    assert 0 <= first <= watch.seconds()


def test_timings_of_device_work_wait_for_the_device():
    """CUDA runs kernels asynchronously: the modules that time work on a device read the clock
    through Stopwatch (which synchronises), never time.perf_counter directly."""
    from pathlib import Path

    import loes

    root = Path(loes.__file__).parent
    timed = [
        "pipeline/cross_validation/training.py",
        "pipeline/explain/maps.py",
        "pipeline/explain/explanations.py",
    ]
    for name in timed:
        source = (root / name).read_text()
        assert "perf_counter" not in source, name
        assert "Stopwatch(" in source, name


def test_reproducible_turns_off_what_makes_cuda_reruns_differ():
    code = (
        "import os, torch; from loes.pipeline.run.device import reproducible; reproducible(); "
        "b = torch.backends; print(torch.are_deterministic_algorithms_enabled(), "
        "torch.is_deterministic_algorithms_warn_only_enabled(), "
        "b.cudnn.benchmark, b.cudnn.deterministic, b.cuda.matmul.allow_tf32, "
        "b.cudnn.allow_tf32, os.environ['CUBLAS_WORKSPACE_CONFIG'])"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    assert _run(code, env=env) == "True True False True False False :4096:8"
