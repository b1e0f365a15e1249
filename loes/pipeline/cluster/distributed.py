"""Several processes training one fold together: PyTorch's ``DistributedDataParallel`` (DDP)
under ``torchrun``, one process per GPU (or, for tests, several CPU processes with ``gloo``).

``torchrun --nproc-per-node N -m loes cv ...`` (or ``loes cv --nproc N``, which starts
``torch.distributed.run`` itself) runs ``loes cv`` N times; :func:`process_group` joins the
processes from the environment ``torchrun`` sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``). What differs from one process, and why:

- **Batches** (:func:`batch_sampler`): each epoch a ``torch.utils.data.DistributedSampler``
  deals every training scan to one rank (it repeats up to N-1 scans so that the shares are
  equal), and each rank splits its share into :class:`~loes.pipeline.run.inference.EvenBatchSampler`
  batches of ``training.batch_size // N`` scans: the same number of batches on every rank, as
  DDP needs, none of one scan, and a step's batches together about ``training.batch_size``
  (nnU-Net v2 shares its global batch among GPUs the same way). DDP averages the gradients.
- **Writes**: rank 0 alone writes files and prints; the others wait for it where they read
  what it wrote (:func:`barrier`, :func:`main_first`).
- **BatchNorm recomputation**: every rank recomputes the statistics on the whole of the fold's
  BatchNorm sample (``training.batchnorm_scans``), in the batches a one-process run uses, so
  every rank holds the statistics one process computes. (Averaging per-rank statistics, each
  over its own share, drops the variance between the shares and depends on the number of
  ranks.)
- **Collectives** (:func:`mean`) reduce tensors on the device the group has a backend for
  (:func:`reduction_device`): ``nccl`` has none for CPU tensors.
- **Decisions** (best epoch, early stopping): every rank validates with identical weights, and
  rank 0's validation MAE is :func:`broadcast`, so no rank stops while another trains on.

Sources: PyTorch's "Getting started with distributed data parallel" and ``torchrun`` docs
(https://pytorch.org/docs/stable/elastic/run.html), which advise DDP over ``DataParallel``;
nnU-Net v2's DDP trainer (``nnunetv2/training/nnUNetTrainer``) for the shared batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from loes.errors import LoesError
from loes.pipeline.run.device import job_cpus, requested_threads, threads_per_rank
from loes.pipeline.run.inference import EvenBatchSampler

__all__ = [
    "barrier",
    "batch_sampler",
    "broadcast",
    "is_distributed",
    "is_main",
    "launch",
    "launched_by_torchrun",
    "main_first",
    "mean",
    "process_group",
    "rank",
    "reduction_device",
    "world_size",
    "wrap",
]

#: how long a rank waits for the others at a collective before failing (a rank that died
#: makes ``torchrun`` stop the rest sooner)
TIMEOUT = dt.timedelta(minutes=30)


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` started (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 alone, or before the group starts: ``torchrun``'s ``RANK``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes training together (1 without ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join the processes ``torchrun`` started, for the duration of the block; yield this
    rank's device (``cuda:LOCAL_RANK`` on GPUs, else ``device``).

    ``nccl`` on CUDA, ``gloo`` on the CPU, each for its device type alone (``"cuda:nccl"``,
    ``"cpu:gloo"``): a CPU run then fails where a CUDA one would, on a collective given a
    tensor of the other device (:func:`reduction_device` tells which to use). Without
    ``torchrun`` (or when the caller already started a group) nothing is started and
    ``device`` is yielded as is. The group is destroyed on the way out.

    Raises:
        LoesError: when there are more processes on this node than GPUs.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield device
        return
    if device.type == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise LoesError(
                f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', local + 1)} processes "
                f"on this node but PyTorch sees {torch.cuda.device_count()} GPU(s); start one "
                "process per GPU (--nproc-per-node / --nproc)."
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("cuda:nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("cpu:gloo", timeout=TIMEOUT)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (nothing without a process group)."""
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_first(enabled: bool = True) -> Iterator[None]:
    """Run the block on rank 0 first, then on the others: for work whose result rank 0 writes
    to disk and the others then read (the synthetic cohort, the disk cache)."""
    if not (enabled and is_distributed()):
        yield
        return
    if not is_main():
        dist.barrier()
    yield
    if is_main():
        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reduction_device(backend_config: str) -> torch.device:
    """The device whose tensors a process group with ``backend_config`` (what
    ``torch.distributed.get_backend_config()`` says: ``"cuda:nccl"``, ``"cpu:gloo"``,
    ``"cpu:gloo,cuda:gloo"``) reduces: the CPU where it has a CPU backend, else its first
    device type (the current CUDA device for ``nccl``, which has no CPU backend).

    Examples::

        >>> reduction_device("cuda:nccl")
        device(type='cuda')
        >>> reduction_device("cpu:gloo,cuda:gloo")
        device(type='cpu')
    """
    types = [entry.split(":")[0].strip() for entry in backend_config.split(",")]
    return torch.device("cpu" if "cpu" in types else types[0])


def mean(value: float) -> float:
    """The mean of ``value`` over the ranks (reduced on :func:`reduction_device`)."""
    if not is_distributed():
        return value
    device = reduction_device(dist.get_backend_config())
    total = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item()) / dist.get_world_size()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when several processes train it (which
    broadcasts rank 0's weights and averages the gradients), else ``model`` itself."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def batch_sampler(n: int, batch_size: int) -> EvenBatchSampler:
    """This rank's shuffled batches of an epoch over ``n`` items (see the module docstring).

    The shuffle's seed comes from rank 0's ``torch`` random state, which the training seeds
    from (seed, fold, epoch): the same batches after a resume, the same deal on every rank.

    Raises:
        LoesError: when ``batch_size`` is smaller than the number of processes.
    """
    ranks = world_size()
    if batch_size < ranks:
        raise LoesError(
            f"training.batch_size={batch_size} is smaller than the {ranks} processes training "
            "together; each needs at least one scan per step: a larger batch or fewer processes."
        )
    seed = broadcast(int(torch.randint(0, 2**31 - 1, ()).item()))
    share = DistributedSampler(range(n), num_replicas=ranks, rank=rank(), shuffle=True, seed=seed)
    return EvenBatchSampler(len(share), batch_size // ranks, indices=share)


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m loes ARGV`` in ``nproc`` processes on this machine through
    ``torch.distributed.run`` (``torchrun --standalone --nproc-per-node NPROC -m loes ARGV``);
    return the exit status: 0, 2 when a process stopped on a user error (its message is
    printed above), else 1.

    Each process gets an equal share of the job's CPU cores
    (:func:`~loes.pipeline.run.device.threads_per_rank` of
    :func:`~loes.pipeline.run.device.job_cpus`), or ``OMP_NUM_THREADS`` where that is fewer
    (``torchrun`` would give each one thread).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    threads = threads_per_rank(job_cpus(), nproc, requested_threads())
    os.environ["OMP_NUM_THREADS"] = str(threads)
    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "loes", *argv])
    try:
        run(args)
    except ChildFailedError as error:
        codes = {failure.exitcode for failure in error.failures.values()}
        return 2 if 2 in codes else 1
    return 0
