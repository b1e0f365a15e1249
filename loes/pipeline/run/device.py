"""The device a run trains on and how to run fast there: mixed precision, the memory layout of
3D convolutions, CPU threads and the C allocator."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys

import torch

from loes.errors import LoesError

__all__ = [
    "autocast",
    "available_cpus",
    "configure_cpu",
    "keep_freed_memory",
    "memory_format",
    "resolve_device",
]

# mallopt(3) parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when PyTorch sees a GPU, else the CPU), ``"cpu"`` or ``"cuda"``.

    Raises:
        LoesError: when CUDA is asked for and PyTorch sees no GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LoesError("device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA (bf16 where supported, else fp16); nothing on other devices,
    where autocast without native low-precision units only slows training down (bf16 on an
    AVX2 CPU: a training step 6x slower than fp32)."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def memory_format(device: torch.device, name: str = "auto") -> torch.memory_format:
    """The memory layout of a run's model and batches: ``"channels_last"``
    (``torch.channels_last_3d``, NDHWC), ``"contiguous"`` (NCDHW), or ``"auto"``.

    ``auto`` is what ``python -m benchmarks step`` measured fastest: channels_last_3d on a CPU
    (oneDNN's 3D convolutions run NDHWC without reordering; an AlexNet3D training step took
    0.79x the time of NCDHW on an AVX-512 EPYC, and 0.48x on an AVX2 one as measured when
    issue 16 was filed), contiguous on CUDA, where it has not been measured yet. Results agree
    within float tolerance either way.
    """
    if name == "auto":
        name = "channels_last" if device.type == "cpu" else "contiguous"
    return torch.channels_last_3d if name == "channels_last" else torch.contiguous_format


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (``taskset``, a SLURM allocation,
    a cgroup cpuset), which may be fewer than ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc's ``malloc`` keep freed memory for reuse instead of returning it to the
    kernel, so that the next training step's tensors do not fault their pages in again.

    Raises ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to 1 GiB with ``mallopt(3)`` (what
    ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...`` does at
    start-up). By default every tensor over 128 KiB is its own ``mmap`` that ``free`` unmaps;
    an AlexNet3D training step at 72x88x72 then took 180,000 minor page faults and as much
    system time as compute. The process keeps the memory it freed (an AlexNet3D training step's
    peak resident size grew from 1.04 to 1.20 GB). Returns whether the allocator took the
    settings (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # musl and others without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def configure_cpu() -> int:
    """Process-wide CPU settings for training: :func:`keep_freed_memory`, and one intra-op
    thread per CPU of :func:`available_cpus` unless ``OMP_NUM_THREADS`` says otherwise.
    Returns the number of threads."""
    keep_freed_memory()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(available_cpus())
    return torch.get_num_threads()
