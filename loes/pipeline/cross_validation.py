"""Subject-grouped k-fold cross-validation: one cache for every fold, a network and its
baselines trained on the same folds, atomic per-fold results, resumable runs."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.transforms import Compose, ToDeviced
from torch.utils.data import Subset
from tqdm.auto import tqdm

from loes.data import make_folds, validate_dataset
from loes.errors import LoesError
from loes.io import write_json, write_text
from loes.pipeline.baselines import downsampled_features, median_baseline, ridge_baseline
from loes.pipeline.config import Config, load_config
from loes.pipeline.metrics import regression_metrics
from loes.pipeline.report import write_report
from loes.pipeline.training import FoldData, network_for, predict, train_fold
from loes.transforms import augmentation, preprocessing

__all__ = [
    "augmentation_for",
    "cross_validate",
    "preprocessing_for",
    "resolve_device",
    "scan_items",
]

_PACKAGES = ("loes", "torch", "monai", "numpy", "scikit-learn", "SimpleITK", "nibabel", "nilearn")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LoesError("device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
    return torch.device(name)


def _environment(device: torch.device) -> dict:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = None
    return {
        "packages": versions,
        "git_revision": revision,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "node": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def _check_buildable(config: Config) -> None:
    """Build the transforms, and the network on the meta device, so that a bad name, size or
    option fails before any work."""
    preprocessing_for(config)
    augmentation_for(config)
    try:
        with torch.device("meta"):
            network_for(config)
    except ValueError as error:
        raise LoesError(f"model.name={config.model.name}: {error}") from None


def _comparable(config: Config) -> dict:
    """The settings that decide a run's results (not where it runs or how it loads data)."""
    settings = config.to_dict()
    del settings["device"], settings["training"]["num_workers"]
    return settings


def _prepare_run_folder(config: Config) -> Path:
    """Create the run folder, or check that an existing one was made by the same configuration."""
    run_dir = Path(config.out)
    saved = run_dir / "config.yaml"
    if saved.exists():
        changed = _differences(_comparable(load_config(saved)), _comparable(config))
        if changed:
            raise LoesError(
                f"{run_dir} holds a run with another configuration (differs in "
                f"{', '.join(sorted(changed))}); choose another --out or delete that folder."
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LoesError(f"cannot create the run folder {run_dir}: {error.strerror}.") from error
    write_text(saved, config.to_yaml())
    return run_dir


def _differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two nested settings dicts."""
    out = set()
    for key in set(a) | set(b):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out |= _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.add(f"{prefix}{key}")
    return out


def _load_table(config: Config) -> pd.DataFrame:
    """The validated scan table: the user's source, or the built-in synthetic cohort."""
    d = config.data
    if d.source is None:
        from loes.data.synthetic import GENERATOR_VERSION, generate_cohort

        name = (  # a new generator version writes a new folder instead of refusing the old
            f"synthetic-v{GENERATOR_VERSION}-n{d.synthetic_subjects}-seed{d.synthetic_seed}-{d.synthetic_contrast}"
            f"-{d.synthetic_resolution:g}mm"
        )
        start = time.perf_counter()
        source = generate_cohort(
            Path(d.cache_dir) / name,
            subjects=d.synthetic_subjects,
            seed=d.synthetic_seed,
            contrast=d.synthetic_contrast,
            resolution=d.synthetic_resolution,
            workers=os.cpu_count() or 1,
            progress=sys.stderr.isatty(),
        )
        tqdm.write(
            f"synthetic cohort ready in {source.parent} ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
        )
        options = {}
    else:
        source = d.source
        options = {"format": d.format, "images_dir": d.images_dir, "include_gd": d.include_gd}
    table = validate_dataset(source, **options).raise_for_errors()
    return table.reset_index(drop=True)


@dataclass
class _Cohort:
    """Every scan preprocessed once, shared by every fold."""

    table: pd.DataFrame
    cache: Dataset
    features: np.ndarray  # the ridge baseline's inputs, one row per scan


def scan_items(table: pd.DataFrame) -> list[dict]:
    """The MONAI data dictionaries of a scan table (plain floats, so caches load safely)."""
    return [
        {
            "image": row.image,
            "loes_score": float(row.loes_score),
            "subject": row.subject,
            "session": row.session,
        }
        for row in table.itertuples()
    ]


def preprocessing_for(config: Config):
    """The deterministic preprocessing that ``config`` describes."""
    p = config.preprocessing
    return preprocessing(
        keys="image",
        spatial_size=p.spatial_size,
        pixdim=p.pixdim,
        orientation=p.orientation,
        normalize=p.normalize,
        bias_correction=p.bias_correction,
        register=p.register,
    )


def augmentation_for(config: Config):
    """The random transforms that ``config`` describes, or None when augmentation is off."""
    p = config.augmentation
    if not p.enabled:
        return None
    return augmentation(
        keys="image",
        prob=p.affine_prob,
        rotate_degrees=p.rotate_degrees,
        flip_prob=p.flip_prob,
        bias_prob=p.bias_prob,
        noise_prob=p.noise_prob,
        gamma_prob=p.contrast_prob,
        elastic=p.elastic,
        pixdim=config.preprocessing.pixdim,
    )


def _build_cache(table: pd.DataFrame, config: Config, device: torch.device) -> _Cohort:
    p = config.preprocessing
    transform = preprocessing_for(config)
    items = scan_items(table)
    workers = os.cpu_count() or 1
    start = time.perf_counter()
    if p.cache == "disk":
        # Keyed by the preprocessing settings so later runs with the same ones reuse the files.
        key = json.dumps(config.to_dict()["preprocessing"], sort_keys=True).encode()
        folder = Path(config.data.cache_dir) / "persistent" / hashlib.sha1(key).hexdigest()[:16]
        cache: Dataset = PersistentDataset(items, transform, cache_dir=folder)
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
    tqdm.write(
        f"preprocessed {len(items)} scans once for every fold ({p.cache} cache, "
        f"{time.perf_counter() - start:.0f} s)",
        file=sys.stderr,
    )
    return _Cohort(table=table, cache=cache, features=features)


def _fold_dir(run_dir: Path, repeat: int, fold: int, repeats: int) -> Path:
    return run_dir / (f"fold_{fold}" if repeats == 1 else f"repeat_{repeat}/fold_{fold}")


def _indices(table: pd.DataFrame, subjects: list[str]) -> list[int]:
    return table.index[table["subject"].isin(subjects)].tolist()


def _run_fold(cohort: _Cohort, fold, config: Config, fold_dir: Path, device: torch.device) -> None:
    """Train, predict and score one fold; its files appear only when all of it is done."""
    table = cohort.table
    train, val, test = (_indices(table, s) for s in (fold.train, fold.val, fold.test))
    if not val or not train:
        raise LoesError(
            f"{fold.name} has {len(fold.train)} training and {len(fold.val)} validation "
            "subjects; both need at least one (more subjects, fewer folds, or another splits file)."
        )
    train_side = train + val  # the baselines may use every non-test scan
    data = FoldData(
        train=Subset(cohort.cache, train),
        val=Subset(cohort.cache, val),
        test=Subset(cohort.cache, test),
        train_scores=table.loc[train, "loes_score"].to_numpy(),
        augment=augmentation_for(config),
    )
    seed = config.seed * 10_000 + fold.repeat * 100 + fold.fold
    label = f"repeat {fold.repeat} fold {fold.fold}"
    start = time.perf_counter()
    model, history = train_fold(config, data, fold_dir, device, seed=seed, label=label)
    network = predict(model, data.test, config, device).assign(model="network")

    truth = table.loc[test, ["subject", "session", "loes_score"]].reset_index(drop=True)
    scores = table.loc[train_side, "loes_score"].to_numpy()
    median = truth.assign(predicted=median_baseline(scores, len(test)), model="median")
    ridge = truth.assign(
        predicted=ridge_baseline(
            cohort.features[train_side],
            scores,
            table.loc[train_side, "subject"].to_numpy(),
            cohort.features[test],
        ),
        model="ridge",
    )
    predictions = pd.concat([network, median, ridge], ignore_index=True)
    predictions.insert(0, "fold", fold.fold)
    predictions.insert(0, "repeat", fold.repeat)
    metrics = {
        name: regression_metrics(group["loes_score"], group["predicted"])
        for name, group in predictions.groupby("model", sort=False)
    }
    metrics["best_epoch"] = int(history.loc[history["val_mae"].idxmin(), "epoch"])
    metrics["epochs_trained"] = len(history)
    metrics["subjects"] = {"train": fold.train, "val": fold.val, "test": fold.test}

    write_text(fold_dir / "history.csv", history.to_csv(index=False))
    write_text(fold_dir / "predictions.csv", predictions.to_csv(index=False))
    write_json(fold_dir / "metrics.json", metrics)  # last: marks the fold as finished
    tqdm.write(
        f"{label}: MAE network {metrics['network']['mae']:.2f}, median "
        f"{metrics['median']['mae']:.2f}, ridge {metrics['ridge']['mae']:.2f} (best epoch "
        f"{metrics['best_epoch']}/{len(history)}, {time.perf_counter() - start:.0f} s)",
        file=sys.stderr,
    )


def cross_validate(config: Config) -> dict:
    """Run (or resume) the cross-validation described by ``config``; return the report dict.

    Examples::

        >>> from loes.pipeline import cross_validate, load_config
        >>> report = cross_validate(load_config("configs/cpu.yaml"))  # doctest: +SKIP
    """
    device = resolve_device(config.device)
    if config.preprocessing.cache == "gpu" and device.type != "cuda":
        raise LoesError(
            f"preprocessing.cache=gpu needs a CUDA device, but this run uses {device}; "
            "use preprocessing.cache=memory or disk."
        )
    _check_buildable(config)
    run_dir = _prepare_run_folder(config)
    write_json(run_dir / "environment.json", _environment(device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    table = _load_table(config)
    c = config.cv
    splits_path = Path(c.splits_file) if c.splits_file else run_dir / "splits.json"
    splits = make_folds(
        table,
        n_folds=c.folds,
        repeats=c.repeats,
        seed=config.seed,
        val_fraction=c.val_fraction,
        by_site=c.by_site,
        path=splits_path,
    )
    if c.splits_file:
        splits.to_json(run_dir / "splits.json")
    pending = [
        fold
        for fold in splits.folds
        if not (_fold_dir(run_dir, fold.repeat, fold.fold, c.repeats) / "metrics.json").exists()
    ]
    if pending:
        cohort = _build_cache(table, config, device)
        for fold in tqdm(pending, desc="folds", unit="fold", disable=None):
            _run_fold(
                cohort, fold, config, _fold_dir(run_dir, fold.repeat, fold.fold, c.repeats), device
            )
    return write_report(run_dir, config=config.to_dict())
