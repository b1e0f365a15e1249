"""Runs on several processes and nodes: DistributedDataParallel under ``torchrun``
(``distributed``), a run as SLURM jobs (``slurm``), and the disk cache of preprocessed scans that
fold jobs and ranks fill at once (``disk_cache``)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["distributed"],
    submod_attrs={
        "disk_cache": ["SharedPersistentDataset"],
        "slurm": ["SlurmResources", "submit", "write_slurm_scripts"],
    },
)
