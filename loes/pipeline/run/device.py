"""The device a run trains on and how to run fast there: mixed precision, the memory layout of
3D convolutions, CPU threads and the C allocator; timings that wait for the device, and the
settings that make a CUDA run repeat itself bit for bit."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import importlib.util
import os
import shutil
import sys
import time

import torch

from loes.errors import LoesError

__all__ = [
    "Stopwatch",
    "amp_dtype",
    "autocast",
    "available_cpus",
    "backend_flags",
    "c_compiler",
    "compiled",
    "compiles",
    "configure_backends",
    "configure_cpu",
    "job_cpus",
    "keep_freed_memory",
    "memory_format",
    "mixed_precision_dtype",
    "reproducible",
    "requested_threads",
    "resolve_device",
    "restore_backend_flags",
    "synchronize",
    "threads_per_rank",
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


def mixed_precision_dtype(
    capability: tuple[int, int], native_bf16: bool | None = None
) -> torch.dtype | None:
    """The autocast dtype for a CUDA GPU of compute ``capability`` (major, minor), or None for
    float32.

    bf16 where the GPU computes it natively: ``native_bf16`` (what
    ``torch.cuda.is_bf16_supported(including_emulation=False)`` says, where PyTorch has that
    argument), else compute capability 8.0 or more (Ampere on). fp16, which needs a
    ``GradScaler``, from 7.0 (Volta, Turing: tensor cores), where bf16 is only emulated
    (``is_bf16_supported()`` without the argument says yes there, and convolutions then crawl
    or fail). float32 below (Pascal has no tensor cores; most of it computes fp16 at 1/64 rate).
    Source: the CUDA C++ Programming Guide's arithmetic throughput table.

    Examples::

        >>> mixed_precision_dtype((9, 0))
        torch.bfloat16
        >>> mixed_precision_dtype((7, 0))  # V100
        torch.float16
        >>> mixed_precision_dtype((7, 5), native_bf16=False)  # T4
        torch.float16
        >>> mixed_precision_dtype((6, 1)) is None
        True
    """
    if native_bf16 if native_bf16 is not None else tuple(capability) >= (8, 0):
        return torch.bfloat16
    if tuple(capability) >= (7, 0):
        return torch.float16
    return None


def _native_bf16() -> bool | None:
    """``torch.cuda.is_bf16_supported(including_emulation=False)``, or None on a PyTorch
    without the argument (before 2.4)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        return None


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The dtype :func:`autocast` computes in on ``device`` (:func:`mixed_precision_dtype` of
    its GPU), or None: float32 (a CPU, or ``enabled`` false). A run needs a ``GradScaler``
    where this is ``torch.float16``."""
    if device.type != "cuda" or not enabled:
        return None
    return mixed_precision_dtype(torch.cuda.get_device_capability(device), _native_bf16())


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA in :func:`amp_dtype`; nothing on other devices, where autocast
    without native low-precision units only slows training down (bf16 on an AVX2 CPU: a
    training step 6x slower than fp32)."""
    dtype = amp_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has run the work queued on it (CUDA kernels run asynchronously:
    a clock read without this measures their launches); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds of work on ``device`` since the stopwatch started, waiting for the device (with
    :func:`synchronize`) at the start and at each reading.

    Examples::

        >>> watch = Stopwatch(torch.device("cpu"))
        >>> _ = torch.ones(8).sum()
        >>> watch.seconds() >= 0
        True
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        synchronize(device)
        self.start = time.perf_counter()

    def seconds(self) -> float:
        """Seconds since the start, once the device has finished the work queued so far."""
        synchronize(self.device)
        return time.perf_counter() - self.start


def reproducible() -> None:
    """Make CUDA runs repeat themselves: deterministic algorithms
    (``torch.use_deterministic_algorithms``, with the ``CUBLAS_WORKSPACE_CONFIG`` cuBLAS then
    needs), no cuDNN autotuning (``cudnn.benchmark``, which may pick other kernels each run),
    and no TF32. Mixed precision is the caller's to switch off (``training.amp``). Call before
    the first CUDA work. Source: PyTorch's "Reproducibility" notes
    (https://pytorch.org/docs/stable/notes/randomness.html).

    ``warn_only``: an operation that has no deterministic CUDA implementation warns instead of
    stopping the run. AlexNet3D's ``MaxPool3d`` backward is one (PyTorch flags
    ``max_pool3d_with_indices_backward_cuda``, which adds gradients atomically); its windows
    (kernel 3, stride 3) do not overlap, so each input voxel gets one gradient and the sum has
    one order. A network with overlapping pooling windows is not bit for bit repeatable there.

    Uninitialised memory is left as it is (``torch.utils.deterministic.fill_uninitialized_memory``
    off): filling every new tensor with NaN made an AlexNet3D training step on a CPU 1.43x
    slower; without it no difference was measurable (median of 14 alternating pairs 0.97x). No
    loes operation reads memory it has not written, when PyTorch's notes allow the fill off.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def backend_flags() -> dict:
    """The process-wide settings :func:`configure_backends` changes, to hand to
    :func:`restore_backend_flags`."""
    return {
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "fill_uninitialized": torch.utils.deterministic.fill_uninitialized_memory,
    }


def restore_backend_flags(flags: dict) -> None:
    """Put back the settings :func:`backend_flags` read."""
    torch.use_deterministic_algorithms(flags["deterministic"], warn_only=flags["warn_only"])
    torch.backends.cudnn.benchmark = flags["benchmark"]
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.utils.deterministic.fill_uninitialized_memory = flags["fill_uninitialized"]
    if flags["cublas_workspace"] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = flags["cublas_workspace"]


def configure_backends(device: torch.device, deterministic: bool = False) -> dict:
    """The process-wide PyTorch settings of a run on ``device`` (``training.deterministic``):
    :func:`reproducible` when ``deterministic``, else the fast ones: cuDNN autotuning on CUDA
    (``cudnn.benchmark``: each convolution shape tries cuDNN's algorithms once and keeps the
    fastest, which may differ between runs), and PyTorch's defaults for the rest
    (nondeterministic algorithms allowed, TF32 for cuDNN convolutions, none for matmuls). Every
    setting is set either way, so a run's settings never depend on an earlier run in the same
    process. Returns the settings before (:func:`backend_flags`), for
    :func:`restore_backend_flags`.

    Examples::

        >>> before = configure_backends(torch.device("cpu"), deterministic=True)
        >>> torch.are_deterministic_algorithms_enabled()
        True
        >>> restore_backend_flags(before)
    """
    before = backend_flags()
    if deterministic:
        reproducible()
        return before
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = True  # PyTorch's default
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.backends.cudnn.deterministic = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    return before


def c_compiler(device: torch.device) -> str | None:
    """The compiler ``torch.compile`` (inductor) builds its kernels with on ``device``, or None
    where there is none: on a CPU the C++ compiler inductor runs (``$CXX``, else ``g++``;
    ``clang++`` on macOS), on CUDA the C compiler Triton builds its launchers with (``$CC``,
    else ``gcc``, ``clang`` or ``cc``; None without Triton). Looks on the ``PATH`` without
    importing inductor (1.8 s)."""
    if device.type == "cpu":
        default = "clang++" if sys.platform == "darwin" else "g++"
        return shutil.which(os.environ.get("CXX") or default)
    if importlib.util.find_spec("triton") is None:  # inductor's GPU code generator
        return None
    names = [os.environ.get("CC", ""), "gcc", "clang", "cc"]
    return next((found for name in names if name and (found := shutil.which(name))), None)


def compiles(device: torch.device, setting: str = "auto", deterministic: bool = False) -> bool:
    """Whether a run on ``device`` fuses its training step with ``torch.compile``
    (``training.compile``): ``"on"``, ``"off"``, or ``"auto"``: on where a compiler is there
    (:func:`c_compiler`) and the device is one where compiling was measured or expected to
    win: CUDA, where fusing BatchNorm, ReLU and their backward passes into the convolutions'
    neighbours is the expected win (not measured yet: no GPU was at hand), unless
    ``deterministic`` (inductor's kernels and their autotuning are not covered by
    :func:`reproducible`). Not a CPU: compiled, an AlexNet3D training step at 72x88x72 in
    channels_last_3d took 0.59x to 1.25x the eager time in five runs (AVX-512 and AVX2, under
    load; ``python -m benchmarks step``), no reliable win for about a minute of compiling.

    Raises:
        LoesError: for ``"on"`` where there is no compiler.
    """
    if setting == "off":
        return False
    if c_compiler(device) is None:
        if setting == "on":
            kind = "C++" if device.type == "cpu" else "C"
            raise LoesError(
                f"training.compile=on needs a {kind} compiler on this machine (torch.compile "
                "builds its kernels with one) and none was found: install gcc (or set CXX and "
                "CC), or set training.compile=auto."
            )
        return False
    return setting == "on" or (device.type == "cuda" and not deterministic)


def compiled(
    module: torch.nn.Module,
    device: torch.device,
    setting: str = "auto",
    deterministic: bool = False,
) -> torch.nn.Module:
    """``torch.compile(module)`` (inductor, default mode) where :func:`compiles` says so, else
    ``module`` itself. The compiled module shares ``module``'s parameters: save and load
    ``module``'s ``state_dict`` (the compiled one's keys start with ``_orig_mod.``). It
    compiles at its first call, and again for a batch of another size. Random numbers (dropout)
    come from PyTorch's generator as uncompiled (inductor's ``fallback_random``), so the same
    seed draws the same masks compiled or not. Source: PyTorch's ``torch.compile`` (Ansel et
    al. 2024, "PyTorch 2", ASPLOS).

    Unless ``TORCHINDUCTOR_CACHE_DIR`` names another folder than inductor's default, its cache
    gets one folder per CPU instruction set (``/tmp/torchinductor_USER-AVX512``, ``-AVX2``, as
    ``torch.backends.cpu.get_cpu_capability`` says): kernels cached under one
    (``ATEN_CPU_CAPABILITY``, or another CPU sharing the folder) crashed a run under the other."""
    if not compiles(device, setting, deterministic):
        return module
    from torch._inductor.runtime.runtime_utils import default_cache_dir

    default = os.path.abspath(default_cache_dir())  # what importing torch._dynamo sets
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR", default) == default:
        capability = torch.backends.cpu.get_cpu_capability()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default}-{capability}"
    return torch.compile(module, options={"fallback_random": True})


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


def job_cpus() -> int:
    """The CPU cores this job has: :func:`available_cpus`, capped at ``SLURM_CPUS_PER_TASK``
    where SLURM sets it (a cluster without CPU binding leaves the whole node in the affinity
    mask)."""
    cpus = available_cpus()
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        cpus = min(cpus, int(slurm))
    return cpus


def threads_per_rank(cpus: int, local_ranks: int = 1, requested: int | None = None) -> int:
    """Intra-op threads for each of ``local_ranks`` processes sharing ``cpus`` cores: an equal
    share (at least 1), or ``requested`` (``OMP_NUM_THREADS``) where that is fewer. A request
    for more than the share (a SLURM script's ``OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK``, the
    whole task's cores, seen by every rank) would oversubscribe the cores; it gets the share.

    Examples::

        >>> threads_per_rank(16, local_ranks=4)
        4
        >>> threads_per_rank(16, local_ranks=4, requested=16)
        4
        >>> threads_per_rank(16, local_ranks=4, requested=2)
        2
    """
    share = max(1, cpus // max(1, local_ranks))
    return share if requested is None else max(1, min(int(requested), share))


def requested_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a number, or None where it is unset or not a positive integer."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def configure_cpu() -> int:
    """Process-wide CPU settings for training: :func:`keep_freed_memory`, and intra-op threads
    from :func:`threads_per_rank` of the job's cores (:func:`job_cpus`), the processes
    ``torchrun`` started on this node (``LOCAL_WORLD_SIZE``) and ``OMP_NUM_THREADS``; an
    ``OMP_NUM_THREADS`` above the share is lowered to it, for what this process starts too.
    Returns the number of threads."""
    keep_freed_memory()
    local = os.environ.get("LOCAL_WORLD_SIZE", "")
    requested = requested_threads()
    threads = threads_per_rank(job_cpus(), int(local) if local.isdigit() else 1, requested)
    if requested is not None and requested != threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    return torch.get_num_threads()
