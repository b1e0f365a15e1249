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
