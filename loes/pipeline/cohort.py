"""The cohort of a run, read and preprocessed once: the validated scan table (the user's source
or the built-in synthetic cohort), every scan through the preprocessing in one MONAI cache that
serves every fold, and the baselines' image features."""

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

from loes.data import validate_dataset
from loes.data.problems import summarise
from loes.errors import LoesError
from loes.pipeline.baselines import downsampled_features
from loes.pipeline.config import Config
from loes.pipeline.device import available_cpus
from loes.pipeline.disk_cache import SharedPersistentDataset
from loes.pipeline.messages import note
from loes.transforms import augmentation, preprocessing

__all__ = [
    "PreprocessedCohort",
    "augmentation_for",
    "load_table",
    "preprocess_cohort",
    "preprocessing_for",
    "scan_items",
    "synthetic_cohort_dir",
]


def preprocessing_for(config: Config) -> Compose:
    """:func:`loes.transforms.preprocessing` called with the ``preprocessing`` section.

    Raises:
        LoesError: naming the section when the preset refuses a value.
    """
    try:
        return preprocessing(keys="image", **config.preprocessing.preset_kwargs())
    except (ValueError, TypeError) as error:
        raise LoesError(f"preprocessing: {error}") from None


def augmentation_for(config: Config) -> Compose | None:
    """:func:`loes.transforms.augmentation` called with the ``augmentation`` section (at the
    preprocessing's voxel size), or None when augmentation is off.

    Raises:
        LoesError: naming the section when the preset refuses a value.
    """
    if not config.augmentation.enabled:
        return None
    try:
        return augmentation(
            keys="image",
            pixdim=config.preprocessing.pixdim,
            spatial_size=config.preprocessing.spatial_size,
            **config.augmentation.preset_kwargs(),
        )
    except (ValueError, TypeError) as error:
        raise LoesError(f"augmentation: {error}") from None


def synthetic_cohort_dir(config: Config) -> Path:
    """The folder of the built-in synthetic cohort a run with ``data.source: null`` uses, under
    ``data.cache_dir``, named after its generator version and parameters."""
    from loes.data.synthetic import GENERATOR_VERSION

    d = config.data
    return Path(d.cache_dir) / (  # a new generator version writes a new folder
        f"synthetic-v{GENERATOR_VERSION}-n{d.synthetic_subjects}-seed{d.synthetic_seed}"
        f"-{d.synthetic_contrast}-{d.synthetic_resolution:g}mm"
    )


def load_table(config: Config) -> pd.DataFrame:
    """The validated scan table, one row per scan: the user's ``data.source``, or the built-in
    synthetic cohort, generated once into ``data.cache_dir``.

    Raises:
        LoesError: listing every problem the validation finds.
    """
    d = config.data
    if d.source is None:
        from loes.data.synthetic import generate_cohort

        start = time.perf_counter()
        source = generate_cohort(
            synthetic_cohort_dir(config),
            subjects=d.synthetic_subjects,
            seed=d.synthetic_seed,
            contrast=d.synthetic_contrast,
            resolution=d.synthetic_resolution,
            workers=available_cpus(),
            progress=sys.stderr.isatty(),
        )
        note(
            f"synthetic cohort ready in {source.parent} ({time.perf_counter() - start:.0f} s)",
        )
        options = {}
    else:
        source = d.source
        options = {
            "format": d.format,
            "images_dir": d.images_dir,
            "include_gd": d.include_gd,
            "suffix": d.suffix,
        }
    # the field-of-view check says what each scan becomes at the configured voxel size
    report = validate_dataset(source, pixdim=config.preprocessing.pixdim, **options)
    table = report.raise_for_errors()
    if table.empty:
        raise LoesError(
            f"{source} lists no scans to cross-validate (post-contrast scans count only "
            "with data.include_gd)."
        )
    for problem in summarise(report.warnings):  # what `loes validate` would warn about
        note(f"warning: {problem}")
    return table.reset_index(drop=True)


def scan_items(table: pd.DataFrame) -> list[dict]:
    """The MONAI data dictionaries of a scan table: ``image`` (path), ``loes_score`` (a plain
    float, so disk caches load with ``weights_only``), ``subject``, ``session``."""
    return [
        {
            "image": row.image,
            "loes_score": float(row.loes_score),
            "subject": row.subject,
            "session": row.session,
        }
        for row in table.itertuples()
    ]


@dataclass
class PreprocessedCohort:
    """Every scan preprocessed once, shared by every fold.

    ``cache[i]`` is the MONAI item of ``table`` row ``i`` (``image``: (1, D, H, W) float32
    MetaTensor); ``features[i]`` the ridge baseline's inputs of that scan.
    """

    table: pd.DataFrame
    cache: Dataset
    features: np.ndarray

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
    same time (:class:`~loes.pipeline.disk_cache.SharedPersistentDataset` writes each file
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
