"""Subject-grouped k-fold cross-validation: checks first, one preprocessed cohort for every
fold, each pending fold run (:func:`loes.pipeline.fold.run_fold`), then the report.

Re-running the same configuration into the same run folder resumes it: finished folds are
skipped and an interrupted fold continues from its last epoch.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
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
from loes.pipeline.device import configure_cpu, resolve_device
from loes.pipeline.fold import run_fold
from loes.pipeline.messages import note
from loes.pipeline.optimization import schedule_warning
from loes.pipeline.report import write_report
from loes.pipeline.run_folder import (
    check_run_folder,
    check_scans,
    fold_dir,
    is_finished,
    prepare_run_folder,
    write_environment,
    write_scans,
)
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


def run_splits(config: Config, table: pd.DataFrame) -> Splits:
    """The run's folds, written nowhere: ``cv.splits_file`` when set, else the run folder's
    ``splits.json`` when it exists, else drawn from ``table``; checked against ``table``.

    Raises:
        LoesError: when ``cv.splits_file`` does not exist, or the folds do not fit the data.
    """
    c = config.cv
    if c.splits_file:
        path = Path(c.splits_file)
        if not path.is_file():
            raise LoesError(
                f"cv.splits_file={c.splits_file}: no such file; give the path of a splits.json "
                "(e.g. another run's), or leave the setting out to draw new folds."
            )
    else:
        path = Path(config.out) / "splits.json"
    return make_folds(
        table,
        n_folds=c.folds,
        repeats=c.repeats,
        seed=config.seed,
        val_fraction=c.val_fraction,
        by_site=c.by_site,
        path=path if path.is_file() else None,
    )


def cross_validate(config: Config) -> dict:
    """Run (or resume) the cross-validation described by ``config``; return the report dict
    (see :func:`loes.pipeline.report.write_report`).

    Everything that can be checked is checked before the run folder is written: the settings,
    the data, the run folder and the folds.

    Raises:
        LoesError: for a bad setting, a run folder holding another run, or invalid data.

    Examples::

        >>> from loes.pipeline import cross_validate, load_config
        >>> report = cross_validate(load_config("configs/cpu.yaml"))  # doctest: +SKIP
    """
    device = check_config(config)
    configure_cpu()
    table = load_table(config)
    check_scans(check_run_folder(config), table)
    splits = run_splits(config, table)
    warning = schedule_warning(config.training)
    if warning:
        note(f"warning: {warning}")

    run_dir = prepare_run_folder(config)
    write_environment(run_dir, device)
    write_scans(run_dir, table)
    if config.cv.splits_file or not (run_dir / "splits.json").exists():
        splits.to_json(run_dir / "splits.json")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    folders = [fold_dir(run_dir, f.repeat, f.fold, config.cv.repeats) for f in splits.folds]
    pending = [(f, d) for f, d in zip(splits.folds, folders, strict=True) if not is_finished(d)]
    n = len(folders)
    if not pending:
        note(f"all {n} folds finished; rewriting the report")
    else:
        if len(pending) < n:
            note(f"{n - len(pending)} of {n} folds finished; running the other {len(pending)}")
        cohort = preprocess_cohort(table, config, device)
        for fold, folder in tqdm(pending, desc="folds", unit="fold", disable=None):
            run_fold(cohort, fold, config, folder, device)
    return write_report(run_dir, config=config.to_dict())
