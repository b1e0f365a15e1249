"""Subject-grouped k-fold cross-validation: checks first, one preprocessed cohort for every
fold, each pending fold run (:func:`loes.pipeline.cross_validation.fold.run_fold`), then the
report; or one fold alone (:func:`cross_validate_fold`, what a cluster job runs), the report later.

Re-running the same configuration into the same run folder resumes it: finished folds are
skipped and an interrupted fold continues from its last epoch. Fold jobs may start together
on one run folder: the first to get there writes ``splits.json`` and the others read it.
Under ``torchrun`` every process runs these functions, and rank 0 alone writes
(:mod:`loes.pipeline.cluster.distributed`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from loes.data import Fold, Splits, make_folds
from loes.errors import LoesError
from loes.io import check_writable
from loes.pipeline.cluster import distributed
from loes.pipeline.cross_validation.change_model import check_fold_pairs
from loes.pipeline.cross_validation.cohort import (
    augmentation_for,
    preprocess_cohort,
    session_pairs,
)
from loes.pipeline.cross_validation.fold import run_fold
from loes.pipeline.cross_validation.optimization import schedule_warning
from loes.pipeline.cross_validation.training import build_model
from loes.pipeline.predict.members import load_ensemble
from loes.pipeline.predict.run_profile import write_profile
from loes.pipeline.report import write_report
from loes.pipeline.run.config import Config
from loes.pipeline.run.data import load_table, preprocessing_for
from loes.pipeline.run.device import compiles, configure_backends, configure_cpu, resolve_device
from loes.pipeline.run.effective import write_run_config
from loes.pipeline.run.folder import (
    FINISHED_MARKER,
    check_run_folder,
    check_scans,
    fold_dir,
    is_finished,
    prepare_run_folder,
    write_environment,
    write_scans,
)
from loes.pipeline.run.messages import note
from loes.pipeline.run.set_aside import write_set_aside

__all__ = [
    "check_config",
    "check_fold",
    "check_nproc",
    "check_settings",
    "cross_validate",
    "cross_validate_fold",
    "prepare_run",
    "run_splits",
]


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
    check_settings(config)
    compiles(device, config.training.compile, config.training.deterministic)  # a compiler?
    return device


def check_nproc(config: Config, nproc: int) -> None:
    """What can be checked before ``torchrun`` starts ``nproc`` processes training each fold:
    the device, one GPU per process, at least one scan per process per step.

    Raises:
        LoesError: naming ``--nproc`` and what to change.
    """
    if nproc < 1:
        raise LoesError(f"--nproc must be at least 1, got {nproc}.")
    device = check_config(config)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise LoesError(
            f"--nproc {nproc}: PyTorch sees {torch.cuda.device_count()} GPU(s); start at most "
            "one process per GPU."
        )
    if config.training.batch_size < nproc:
        raise LoesError(
            f"--nproc {nproc}: training.batch_size={config.training.batch_size} is smaller; "
            "each process needs at least one scan per step."
        )


def check_settings(config: Config) -> None:
    """The checks of :func:`check_config` that need no device (``loes slurm`` runs them on a
    login node): the transforms and the network, built on the meta device.

    Raises:
        LoesError: naming the setting at fault.
    """
    preprocessing_for(config)
    augmentation_for(config)
    try:
        with torch.device("meta"):
            build_model(config, [0.0])
    except ValueError as error:
        raise LoesError(f"model.name={config.model.name}: {error}") from None


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


def check_fold(splits: Splits, fold: int, repeat: int = 0) -> Fold:
    """The fold ``loes cv --fold K --repeat R`` asks for.

    Raises:
        LoesError: naming the folds and repeats the run has when it has no such fold.
    """
    repeats = sorted({f.repeat for f in splits.folds})
    if repeat not in repeats:
        raise LoesError(
            f"--repeat {repeat}: the run has {len(repeats)} repeat"
            f"{'' if len(repeats) == 1 else 's'}, numbered {_span(repeats)} (cv.repeats)."
        )
    folds = sorted(f.fold for f in splits.folds if f.repeat == repeat)
    if fold not in folds:
        raise LoesError(
            f"--fold {fold}: the run has {len(folds)} folds, numbered {_span(folds)} "
            f"(cv.folds={splits.parameters.get('n_folds', len(folds))}"
            f"{', one per site' if splits.parameters.get('by_site') else ''})."
        )
    return splits.fold(repeat, fold)


def _span(numbers: list[int]) -> str:
    return str(numbers[0]) if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"


def prepare_run(
    config: Config, device: torch.device | None, chosen: tuple[int, int] | None = None
) -> tuple[Path, pd.DataFrame, Splits]:
    """Check the data, the run folder and the folds, then write the run folder (rank 0):
    ``config.yaml``, ``environment.json`` (unless ``device`` is None: ``loes slurm`` on a
    login node), ``scans.csv``, ``training_profile.json`` (what the scans look like, see
    :mod:`loes.pipeline.predict.run_profile`) and, unless another job wrote it first,
    ``splits.json``.
    Returns the run folder, the scan table and the run's splits as written.

    ``chosen``: the (repeat, fold) of a one-fold job, checked before anything is written.

    Raises:
        LoesError: for invalid data, a run folder holding another run, folds that do not fit
            the data, or no such ``chosen`` fold.
        WriteError: when nothing can be written where the run folder goes, before any scan is
            read or the synthetic cohort generated.
    """
    # before the synthetic cohort is generated or any scan read: the results must have a place
    check_writable(config.out, "choose another place with --out")
    with distributed.main_first():  # the synthetic cohort is generated once
        table = load_table(config)
    check_scans(check_run_folder(config), table)
    splits = run_splits(config, table)
    if chosen is not None:
        check_fold(splits, fold=chosen[1], repeat=chosen[0])
    if config.change.model == "paired":  # before any training: every fold needs pairs
        pairs = session_pairs(table)
        for fold in splits.folds:
            check_fold_pairs(pairs, fold)
    warning = schedule_warning(config.training)
    if warning:
        note(f"warning: {warning}")

    run_dir = Path(config.out)
    distributed.barrier()  # every rank has checked the folder before rank 0 writes into it
    if distributed.is_main():
        run_dir = prepare_run_folder(config)
        write_run_config(run_dir, config, device)  # config.yaml with the values in effect
        if device is not None:
            write_environment(run_dir, device)
        write_scans(run_dir, table)
        write_set_aside(run_dir, table)  # the scans read but not used, and why
        # what the scans look like, kept so that predictions never need them (the fold models'
        # spread on them is added when the run ends)
        write_profile(run_dir, table, preprocessing_for(config), config.preprocessing.pixdim)
        # a given splits file is copied; drawn folds are written by the first job only
        splits.to_json(run_dir / "splits.json", exclusive=not config.cv.splits_file)
    distributed.barrier()
    # what splits.json holds now: this job's folds, or those of a job that was first
    return run_dir, table, run_splits(config, table)


def _cohort(table: pd.DataFrame, config: Config, device: torch.device):
    configure_cpu()  # threads and allocator, before the preprocessing's threads start
    configure_backends(device, config.training.deterministic)  # cuDNN autotuning or determinism
    # rank 0 fills a disk cache first, and the other ranks read it
    with distributed.main_first(config.preprocessing.cache == "disk"):
        return preprocess_cohort(table, config, device)


def cross_validate(config: Config) -> dict | None:
    """Run (or resume) the cross-validation described by ``config``; return the report dict
    (see :func:`loes.pipeline.report.write_report`).

    Everything that can be checked is checked before the run folder is written: the settings,
    the data, the run folder and the folds. Under ``torchrun`` every process calls it; rank 0
    returns the report and the others None.

    Raises:
        LoesError: for a bad setting, a run folder holding another run, or invalid data.

    Examples::

        >>> from loes.pipeline import cross_validate, load_config
        >>> report = cross_validate(load_config("configs/cpu.yaml"))  # doctest: +SKIP
    """
    device = check_config(config)
    with distributed.process_group(device) as device:
        run_dir, table, splits = prepare_run(config, device)
        folders = [fold_dir(run_dir, f.repeat, f.fold, config.cv.repeats) for f in splits.folds]
        pending = [(f, d) for f, d in zip(splits.folds, folders, strict=True) if not is_finished(d)]
        n = len(folders)
        if not pending:
            note(f"all {n} folds finished; rewriting the report")
        else:
            if len(pending) < n:
                note(f"{n - len(pending)} of {n} folds finished; running the other {len(pending)}")
            cohort = _cohort(table, config, device)
            for fold, folder in tqdm(
                pending, desc="folds", unit="fold", disable=None if distributed.is_main() else True
            ):
                run_fold(cohort, fold, config, folder, device)
        if not distributed.is_main():
            return None
        report = write_report(run_dir, config=config.to_dict())
        load_ensemble(run_dir)  # completes training_profile.json with the fold models' spread
        return report


def cross_validate_fold(config: Config, fold: int, repeat: int = 0) -> dict | None:
    """Train and score one fold of the run ``config`` describes, and nothing else: the work of
    one cluster job (``loes cv --fold K --repeat R``). Returns the fold's metrics (those of
    its ``metrics.json``); ``loes report`` gathers the finished folds later.

    The run folder is prepared as by :func:`cross_validate` (``splits.json`` written by the
    first job to get there, so every job sees the same folds); a finished fold is left as it
    is, an interrupted one resumes from its ``last.pt``. Under ``torchrun`` every process
    calls it; rank 0 returns the metrics and the others None.

    Raises:
        LoesError: as :func:`cross_validate`, and when the run has no such fold or repeat.
    """
    device = check_config(config)
    with distributed.process_group(device) as device:
        run_dir, table, splits = prepare_run(config, device, chosen=(repeat, fold))
        chosen = splits.fold(repeat, fold)
        folder = fold_dir(run_dir, repeat, fold, config.cv.repeats)
        if is_finished(folder):
            note(f"{chosen.name} is finished ({folder / FINISHED_MARKER}); nothing to do")
            metrics = json.loads((folder / FINISHED_MARKER).read_text())
        else:
            metrics = run_fold(_cohort(table, config, device), chosen, config, folder, device)
        if not distributed.is_main():
            return None
        folders = [fold_dir(run_dir, f.repeat, f.fold, config.cv.repeats) for f in splits.folds]
        done = sum(is_finished(d) for d in folders)
        note(
            f"{done} of {len(folders)} folds of {run_dir} finished; `loes report {run_dir}` "
            "writes the report" + (" (of the finished folds only)" if done < len(folders) else "")
        )
        return metrics
