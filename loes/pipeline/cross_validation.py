"""Subject-grouped k-fold cross-validation: checks first, one preprocessed cohort for every
fold, each pending fold run (:func:`loes.pipeline.fold.run_fold`), then the report.

Re-running the same configuration into the same run folder resumes it: finished folds are
skipped and an interrupted fold continues from its last epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from loes.data import Splits, make_folds
from loes.errors import LoesError
from loes.pipeline.cohort import (
    augmentation_for,
    load_table,
    preprocess_cohort,
    preprocessing_for,
)
from loes.pipeline.config import Config
from loes.pipeline.device import resolve_device
from loes.pipeline.fold import run_fold
from loes.pipeline.report import write_report
from loes.pipeline.run_folder import fold_dir, is_finished, prepare_run_folder, write_environment
from loes.pipeline.training import build_model

__all__ = ["check_config", "cross_validate", "run_splits"]


def check_config(config: Config) -> torch.device:
    """Everything that can fail before any work: the device, the transforms, and the network
    (built on the meta device, so no memory is spent). Returns the device.

    Raises:
        LoesError: naming the setting at fault.
    """
    device = resolve_device(config.device)
    if config.preprocessing.cache == "gpu" and device.type != "cuda":
        raise LoesError(
            f"preprocessing.cache=gpu needs a CUDA device, but this run uses {device}; "
            "use preprocessing.cache=memory or disk."
        )
    preprocessing_for(config)
    augmentation_for(config)
    try:
        with torch.device("meta"):
            build_model(config, [0.0])
    except ValueError as error:
        raise LoesError(f"model.name={config.model.name}: {error}") from None
    return device


def run_splits(config: Config, run_dir: Path, table) -> Splits:
    """The run's folds: ``splits.json`` of the run folder (or ``cv.splits_file``) when it
    exists, else drawn from ``table`` and written there."""
    c = config.cv
    splits = make_folds(
        table,
        n_folds=c.folds,
        repeats=c.repeats,
        seed=config.seed,
        val_fraction=c.val_fraction,
        by_site=c.by_site,
        path=Path(c.splits_file) if c.splits_file else run_dir / "splits.json",
    )
    if c.splits_file:
        splits.to_json(run_dir / "splits.json")
    return splits


def cross_validate(config: Config) -> dict:
    """Run (or resume) the cross-validation described by ``config``; return the report dict
    (see :func:`loes.pipeline.report.write_report`).

    Raises:
        LoesError: for a bad setting, a run folder holding another run, or invalid data.

    Examples::

        >>> from loes.pipeline import cross_validate, load_config
        >>> report = cross_validate(load_config("configs/cpu.yaml"))  # doctest: +SKIP
    """
    device = check_config(config)
    table = load_table(config)  # data problems stop the run before its folder exists
    run_dir = prepare_run_folder(config)
    write_environment(run_dir, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    splits = run_splits(config, run_dir, table)
    folders = [fold_dir(run_dir, f.repeat, f.fold, config.cv.repeats) for f in splits.folds]
    pending = [(f, d) for f, d in zip(splits.folds, folders, strict=True) if not is_finished(d)]
    if pending:
        cohort = preprocess_cohort(table, config, device)
        for fold, folder in tqdm(pending, desc="folds", unit="fold", disable=None):
            run_fold(cohort, fold, config, folder, device)
    return write_report(run_dir, config=config.to_dict())
