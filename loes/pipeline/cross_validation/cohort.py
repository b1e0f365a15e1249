"""The cohort of a run, preprocessed once: every scan of the validated table
(:func:`loes.pipeline.run.data.load_table`) through the preprocessing in one MONAI cache that
serves every fold, the training augmentation, and the baselines' image features."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, Dataset
from monai.transforms import Compose, ToDeviced
from tqdm.auto import tqdm

from loes.errors import LoesError
from loes.pipeline.cluster.disk_cache import SharedPersistentDataset
from loes.pipeline.cross_validation.baselines import downsampled_features
from loes.pipeline.run.config import Config
from loes.pipeline.run.data import preprocessing_for, scan_items
from loes.pipeline.run.device import available_cpus
from loes.pipeline.run.messages import note
from loes.transforms import RandBatchAugmentation, augmentation

__all__ = [
    "PreprocessedCohort",
    "augmentation_for",
    "augmentation_where",
    "preprocess_cohort",
]


def augmentation_where(config: Config, device: torch.device | None = None) -> str:
    """Where a run augments its training scans, ``augmentation.where`` with ``auto`` resolved
    for ``device`` (None: the kind ``config.device`` names, ``auto`` being CUDA when PyTorch
    sees a GPU): ``"batch"`` (each batch on the device) on CUDA, ``"loader"`` (each scan in the
    data loader) on a CPU, where ``python -m benchmarks augment`` measured training epochs no
    faster on the batch, and whenever the elastic deformation is on (the batch path has none)."""
    where = config.augmentation.where
    if where != "auto":
        return where
    if device is None:
        cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        device = torch.device("cuda" if cuda else "cpu")
    return "batch" if device.type == "cuda" and not config.augmentation.elastic else "loader"


def augmentation_for(
    config: Config, device: torch.device | None = None
) -> Compose | RandBatchAugmentation | None:
    """:func:`loes.transforms.augmentation` called with the ``augmentation`` section (at the
    preprocessing's voxel size), or None when augmentation is off: the MONAI per-scan transforms
    that the data loader applies, or, where :func:`augmentation_where` says ``"batch"`` for
    ``device``, the same as a :class:`loes.transforms.RandBatchAugmentation` that training
    applies to each batch on the device.

    Raises:
        LoesError: naming the section when the preset refuses a value.
    """
    if not config.augmentation.enabled:
        return None
    try:
        preset = augmentation(
            keys="image",
            pixdim=config.preprocessing.pixdim,
            spatial_size=config.preprocessing.spatial_size,
            **config.augmentation.preset_kwargs(),
        )
        batch = augmentation_where(config, device) == "batch"
        return RandBatchAugmentation(preset) if batch else preset
    except (ValueError, TypeError) as error:
        raise LoesError(f"augmentation: {error}") from None


@dataclass
class PreprocessedCohort:
    """Every scan preprocessed once, shared by every fold.

    ``cache[i]`` is the MONAI item of ``table`` row ``i`` (``image``: (1, D, H, W) float32
    MetaTensor); ``features[i]`` the ridge baseline's inputs of that scan. With the paired
    change model, ``pairs`` lists every pair of sessions of a subject and ``pair_images[k]``
    is pair ``k``'s registered subtraction
    (:mod:`loes.pipeline.cross_validation.change_model`); both are None otherwise.
    """

    table: pd.DataFrame
    cache: Dataset
    features: np.ndarray
    pairs: pd.DataFrame | None = None
    pair_images: Dataset | None = None

    def indices(self, subjects: list[str]) -> list[int]:
        """Row positions of every scan of ``subjects``."""
        return self.table.index[self.table["subject"].isin(subjects)].tolist()


def preprocess_cohort(
    table: pd.DataFrame, config: Config, device: torch.device
) -> PreprocessedCohort:
    """Run the preprocessing once per scan into the cache ``preprocessing.cache`` names.

    ``memory``: a MONAI ``CacheDataset``; ``gpu``: the same, moved to ``device``; ``disk``: a
    ``PersistentDataset`` under ``data.cache_dir/persistent/<hash of the preprocessing
    settings>``, shared by runs with the same preprocessing and by fold jobs running at the
    same time (:class:`~loes.pipeline.cluster.disk_cache.SharedPersistentDataset` writes each file
    atomically).
    """
    p = config.preprocessing
    transform = preprocessing_for(config)
    items = scan_items(table)
    workers = available_cpus()
    start = time.perf_counter()
    if p.cache == "disk":
        key = json.dumps(p.model_dump(mode="json", exclude={"cache"}), sort_keys=True).encode()
        folder = Path(config.data.cache_dir) / "persistent" / hashlib.sha1(key).hexdigest()[:16]
        cache: Dataset = SharedPersistentDataset(items, transform, cache_dir=folder)
    else:
        if p.cache == "gpu":
            # flat, or CacheDataset would see a nested Compose as random and cache nothing
            transform = Compose([transform, ToDeviced(keys="image", device=device)]).flatten()
        cache = CacheDataset(items, transform, num_workers=workers, progress=sys.stderr.isatty())
    features = np.stack(
        [
            downsampled_features(cache[i]["image"].cpu())
            for i in tqdm(range(len(items)), desc="features", leave=False, disable=None)
        ]
    )
    note(
        f"preprocessed {len(items)} scans once for every fold ({p.cache} cache, "
        f"{time.perf_counter() - start:.0f} s)",
    )
    return PreprocessedCohort(table=table, cache=cache, features=features)
