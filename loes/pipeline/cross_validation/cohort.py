"""The cohort of a run, preprocessed once: every scan of the validated table
(:func:`loes.pipeline.run.data.load_table`) through the preprocessing in one MONAI cache that
serves every fold, the training augmentation, the baselines' image features and, for the paired
change model (:mod:`loes.pipeline.cross_validation.change_model`), every pair of sessions of a
subject registered and subtracted once."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, Dataset
from monai.transforms import Compose, DeleteItemsd, MapTransform, ToDeviced
from tqdm.auto import tqdm

from loes.data.follow_up import in_time_order
from loes.data.problems import plural
from loes.errors import LoesError
from loes.io import write_json
from loes.pipeline.cluster.disk_cache import SharedPersistentDataset
from loes.pipeline.cross_validation.baselines import downsampled_features
from loes.pipeline.run.config import Config
from loes.pipeline.run.data import preprocessing_for, scan_items
from loes.pipeline.run.device import available_cpus
from loes.pipeline.run.folder import package_versions
from loes.pipeline.run.messages import note
from loes.transforms import RandBatchAugmentation, RegisteredSubtractiond, augmentation

__all__ = [
    "CACHE_FILE",
    "CACHE_PACKAGES",
    "PAIRS_FOLDER",
    "PreprocessedCohort",
    "augmentation_for",
    "augmentation_where",
    "disk_cache_folder",
    "disk_cache_key",
    "preprocess_cohort",
    "preprocess_pairs",
    "session_pairs",
]


#: With ``preprocessing.cache: disk``, the registered subtractions of the pairs of sessions sit
#: in this folder of the scans' cache folder (one file per pair, named by a hash of the pair,
#: its change, subject and session and of its two scan files' paths, sizes and modification
#: times: :func:`~loes.pipeline.cluster.disk_cache.stamped_hash`).
PAIRS_FOLDER = "pairs"
#: the file in each disk cache folder that says what it holds (:func:`disk_cache_key`)
CACHE_FILE = "cache.json"
#: the packages whose version is part of the disk cache's key (:func:`disk_cache_folder`)
CACHE_PACKAGES = ("loes", "monai", "SimpleITK", "nibabel", "torch")


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


def session_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Every pair (earlier, later) of sessions of each subject of a scan table.

    Args:
        table: one row per scan, ``subject, session, loes_score`` (and ``age``); sessions are
            put in time order by :func:`loes.data.follow_up.in_time_order`.

    Returns:
        One row per pair: ``earlier``, ``later`` (positions of the two rows in ``table``),
        ``subject, from_session, to_session``, ``consecutive`` (no session between them) and
        ``loes_score_change`` (later minus earlier, Loes points); a subject with one session
        gives no row.
    """
    ordered = in_time_order(table.reset_index(drop=True))
    rows = []
    for subject, sessions in ordered.groupby("subject", sort=False):
        positions = list(sessions.index)
        for a, earlier in enumerate(positions):
            for b in range(a + 1, len(positions)):
                later = positions[b]
                rows.append(
                    {
                        "earlier": earlier,
                        "later": later,
                        "subject": str(subject),
                        "from_session": str(ordered.at[earlier, "session"]),
                        "to_session": str(ordered.at[later, "session"]),
                        "consecutive": b == a + 1,
                        "loes_score_change": float(
                            ordered.at[later, "loes_score"] - ordered.at[earlier, "loes_score"]
                        ),
                    }
                )
    columns = ["earlier", "later", "subject", "from_session", "to_session", "consecutive"]
    return pd.DataFrame(rows, columns=[*columns, "loes_score_change"])


class _PreprocessSessions(MapTransform):
    """The scan preprocessing (a ``Compose`` on ``"image"``) applied to the path under each of
    ``keys`` on its own (each session its own crop), each path once in this process, even
    when threads ask for it at once;
    ``pairs`` counts the items it was called for."""

    def __init__(self, transform: Compose, keys: tuple[str, ...] = ("earlier", "later")):
        super().__init__(keys)
        self.transform, self.done, self.pairs = transform, {}, 0
        self._lock, self._scan_locks = threading.Lock(), {}

    def _scan(self, path: str) -> torch.Tensor:
        with self._lock:
            scan_lock = self._scan_locks.setdefault(path, threading.Lock())
        with scan_lock:  # another thread's pair may need the same session at the same time
            if path not in self.done:
                self.done[path] = self.transform({"image": path})["image"]
        return self.done[path]

    def clear(self) -> None:
        """Forget the preprocessed scans (their memory is freed)."""
        self.done.clear()
        self._scan_locks.clear()

    def __call__(self, data: dict) -> dict:
        with self._lock:
            self.pairs += 1
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self._scan(d[key])
        return d


def preprocess_pairs(
    pairs: pd.DataFrame,
    scans: torch.utils.data.Dataset | list[str],
    preprocessing: Compose | None = None,
    cache_dir: Path | None = None,
) -> Dataset:
    """The registered subtraction of every pair, computed once: a MONAI ``CacheDataset`` in
    memory or, with ``cache_dir``, a ``PersistentDataset`` there that later runs and one-fold
    jobs with the same preprocessing read instead of registering again.

    Args:
        pairs: :func:`session_pairs` of a table.
        scans: ``scans[i]["image"]``, the preprocessed (1, D, H, W) MetaTensor of table row
            ``i``; with ``cache_dir``, the image path of row ``i`` instead, each preprocessed
            by ``preprocessing`` when a pair of it is not in the cache yet.

    Returns:
        A dataset whose item ``k`` is ``{"image"``: the subtraction image of pair ``k`` on its
        earlier scan's grid, ``"loes_score"``: the true change, ``"subject"``, ``"session"``:
        the later session``}``.
    """
    items = [
        {
            "earlier": scans[row.earlier] if cache_dir else scans[row.earlier]["image"],
            "later": scans[row.later] if cache_dir else scans[row.later]["image"],
            "loes_score": row.loes_score_change,
            "subject": row.subject,
            "session": row.to_session,
        }
        for row in pairs.itertuples()
    ]
    steps = [
        RegisteredSubtractiond("earlier", "later", "image"),
        DeleteItemsd(["earlier", "later"]),
    ]
    if not items:
        return CacheDataset(items, Compose(steps))
    n = plural(len(items), "pair")  # minutes for a few hundred pairs: say so before
    note(
        f"registering {n} of sessions for the paired change model"
        + ("" if cache_dir is None else f" (or reading them from the disk cache {cache_dir})")
    )
    start = time.perf_counter()
    if cache_dir is None:
        cache = CacheDataset(
            items, Compose(steps), num_workers=available_cpus(), progress=sys.stderr.isatty()
        )
        done = f"registered and subtracted {n} of sessions"
    else:  # the registration needs each scan's affine, which the scans' disk cache drops
        sessions = _PreprocessSessions(preprocessing)
        cache = SharedPersistentDataset(
            items, Compose([sessions, *steps]), cache_dir, file_keys=("earlier", "later")
        )
        pool = ThreadPoolExecutor(available_cpus())  # each pair computed and written once
        try:
            ready = pool.map(cache.__getitem__, range(len(items)))
            for _ in tqdm(ready, total=len(items), desc="pairs", leave=False, disable=None):
                pass
        finally:  # interrupted: the pairs not started yet are not waited for
            pool.shutdown(cancel_futures=True)
            sessions.clear()
        read = len(items) - sessions.pairs
        done = f"{n} of sessions ready ({sessions.pairs} registered now, {read} read from disk)"
    note(f"{done} ({time.perf_counter() - start:.0f} s)")
    return cache


@dataclass
class PreprocessedCohort:
    """Every scan preprocessed once, shared by every fold.

    ``cache[i]`` is the MONAI item of ``table`` row ``i`` (``image``: (1, D, H, W) float32
    MetaTensor); ``features[i]`` the ridge baseline's inputs of that scan. With the paired
    change model (``change.model: paired``), ``pairs`` lists every pair of sessions of a subject
    (:func:`session_pairs`) and ``pair_images[k]`` is pair ``k``'s registered subtraction
    (:func:`preprocess_pairs`); both are None otherwise.
    """

    table: pd.DataFrame
    cache: Dataset
    features: np.ndarray
    pairs: pd.DataFrame | None = None
    pair_images: Dataset | None = None

    def indices(self, subjects: list[str]) -> list[int]:
        """Row positions of every scan of ``subjects``."""
        return self.table.index[self.table["subject"].isin(subjects)].tolist()


def disk_cache_key(config: Config) -> dict:
    """What the disk cache's folder is named by: ``preprocessing`` (the settings) and
    ``versions`` (of :data:`CACHE_PACKAGES`)."""
    settings = config.preprocessing.model_dump(mode="json", exclude={"cache"})
    return {"preprocessing": settings, "versions": package_versions(CACHE_PACKAGES)}


def disk_cache_folder(config: Config) -> Path:
    """``data.cache_dir/persistent/<key>``: the folder of ``preprocessing.cache: disk``, its key
    a hash of :func:`disk_cache_key`, the preprocessing settings and the versions of the
    packages that compute what it holds, so that an upgrade preprocesses and registers again
    instead of reading files an older version wrote."""
    key = json.dumps(disk_cache_key(config), sort_keys=True).encode()
    return Path(config.data.cache_dir) / "persistent" / hashlib.sha1(key).hexdigest()[:16]


def preprocess_cohort(
    table: pd.DataFrame, config: Config, device: torch.device
) -> PreprocessedCohort:
    """Run the preprocessing once per scan into the cache ``preprocessing.cache`` names, and,
    with the paired change model, register and subtract every pair of sessions once.

    ``memory``: a MONAI ``CacheDataset``; ``gpu``: the same, moved to ``device``; ``disk``: a
    ``PersistentDataset`` in :func:`disk_cache_folder`, shared by runs with the same
    preprocessing and by fold jobs running at the same time
    (:class:`~loes.pipeline.cluster.disk_cache.SharedPersistentDataset` writes each file
    atomically).
    """
    p = config.preprocessing
    transform = preprocessing_for(config)
    items = scan_items(table)
    workers = available_cpus()
    start = time.perf_counter()
    folder = None
    if p.cache == "disk":
        folder = disk_cache_folder(config)
        if not (folder / CACHE_FILE).is_file():  # which folder is which, for the user
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / CACHE_FILE, disk_cache_key(config))
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
        f"preprocessed {len(items)} scans ({p.cache} cache"
        + ("" if folder is None else f" {folder}")
        + f", {time.perf_counter() - start:.0f} s)",
    )
    if config.change.model != "paired":
        return PreprocessedCohort(table=table, cache=cache, features=features)
    pairs = session_pairs(table)
    if folder is None:
        return PreprocessedCohort(table, cache, features, pairs, preprocess_pairs(pairs, cache))
    paths = [item["image"] for item in items]
    pair_images = preprocess_pairs(pairs, paths, transform, folder / PAIRS_FOLDER)
    return PreprocessedCohort(table, cache, features, pairs, pair_images)
