"""One fold, the unit of work of a cross-validation: train the network on the fold's training
subjects, choose its epoch on the inner validation subjects, predict the test subjects, fit
the baselines on the same sides, and write the fold's folder. Several folds can run in
separate processes (a cluster job per fold, ``loes cv --fold K``), each writing only its own
folder; several processes can train one fold together under ``torchrun``
(:mod:`loes.pipeline.cluster.distributed`)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Subset

from loes.data import Fold
from loes.data.problems import plural
from loes.errors import LoesError
from loes.io import csv_text, write_json, write_text
from loes.pipeline.cluster import distributed
from loes.pipeline.cross_validation.baselines import median_baseline, ridge_baseline
from loes.pipeline.cross_validation.change_model import train_change_model
from loes.pipeline.cross_validation.cohort import PreprocessedCohort, augmentation_for
from loes.pipeline.cross_validation.training import FoldData, loader, train_fold
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import memory_format
from loes.pipeline.run.folder import CHANGE_FOLDER, FINISHED_MARKER
from loes.pipeline.run.inference import left_right_axis, predict
from loes.pipeline.run.messages import note
from loes.pipeline.run.metrics import regression_metrics
from loes.pipeline.run.predictions import OPTIONAL_COLUMNS

__all__ = ["fold_seed", "run_fold"]


def fold_seed(config: Config, fold: Fold) -> int:
    """The seed of a fold's weights, batches and augmentation: (run seed, repeat, fold)."""
    return config.seed * 10_000 + fold.repeat * 100 + fold.fold


def run_fold(
    cohort: PreprocessedCohort, fold: Fold, config: Config, folder: Path, device: torch.device
) -> dict:
    """Train, predict and score one fold into ``folder``; return its metrics.

    Writes ``best.pt``, ``last.pt`` and ``history.csv`` (training), ``predictions.csv`` (long:
    ``repeat, fold, subject, session, loes_score, predicted, model`` for the network and the
    median and ridge baselines), with the paired change model (``cohort.pairs`` set) its
    ``change/best.pt`` and ``change/last.pt`` and ``changes.csv`` (its change per consecutive
    test pair, :func:`~loes.pipeline.cross_validation.change_model.train_change_model`), and,
    last, ``metrics.json``, so a folder holding that file is finished. A fold interrupted
    before then resumes from ``last.pt`` (and ``change/last.pt``).

    Under ``torchrun`` every rank calls it and trains; rank 0 alone predicts, scores and
    writes, and the other ranks return an empty dict.

    Raises:
        LoesError: when the fold has no training or no validation subjects (or pairs of
            sessions, for the paired change model).
    """
    table = cohort.table
    train, val, test = (cohort.indices(s) for s in (fold.train, fold.val, fold.test))
    if not val or len(train) < 2:
        raise LoesError(
            f"{fold.name} has {len(train)} training and {plural(len(val), 'validation scan')}; "
            "training needs at least 2 and validation 1 (more subjects, fewer folds, or another "
            "splits file)."
        )
    train_side = train + val  # the baselines may use every non-test scan
    data = FoldData(
        train=Subset(cohort.cache, train),
        val=Subset(cohort.cache, val),
        test=Subset(cohort.cache, test),
        train_scores=table.loc[train, "loes_score"].to_numpy(),
        augment=augmentation_for(config, device),
    )
    label = f"repeat {fold.repeat} fold {fold.fold}"
    start = time.perf_counter()
    model, history = train_fold(
        config, data, folder, device, seed=fold_seed(config, fold), label=label
    )
    changes = None
    if cohort.pairs is not None:  # change.model: paired
        changes = train_change_model(
            cohort.pairs,
            cohort.pair_images,
            cohort.cache,
            fold,
            config,
            folder / CHANGE_FOLDER,
            device,
            seed=fold_seed(config, fold),
            label=label,
        )
    if not distributed.is_main():
        return {}
    test_loader = loader(data.test, config, False, device)
    layout = memory_format(device, config.training.memory_format)
    flip_axis = left_right_axis(model.spec["preprocessing"]) if config.cv.tta == "flip" else None
    amp = config.training.mixed_precision
    network = predict(model, test_loader, device, amp, layout, flip_axis)
    network = network.assign(model="network")

    described = ["subject", "session", *(c for c in OPTIONAL_COLUMNS if c in table)]
    truth = table.loc[test, [*described, "loes_score"]].reset_index(drop=True)
    # the table's scores (float64, as the baselines get them) and descriptions (age)
    network = truth.merge(network[["subject", "session", "predicted", "model"]], validate="1:1")
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

    if changes is not None:
        metrics["change"] = {
            "n_pairs": len(changes),
            "mae": float((changes["predicted_change"] - changes["loes_score_change"]).abs().mean()),
        }
        write_text(folder / "changes.csv", csv_text(changes))
    write_text(folder / "history.csv", csv_text(history))
    write_text(folder / "predictions.csv", csv_text(predictions))
    write_json(folder / FINISHED_MARKER, metrics)  # last: marks the fold as finished
    note(
        f"{label}: MAE network {metrics['network']['mae']:.2f}, median "
        f"{metrics['median']['mae']:.2f}, ridge {metrics['ridge']['mae']:.2f} (best epoch "
        f"{metrics['best_epoch']}/{len(history)}, {time.perf_counter() - start:.0f} s)"
        + (
            f"; change MAE paired network {metrics['change']['mae']:.2f} on "
            f"{plural(len(changes), 'consecutive pair')}"
            if changes is not None
            else ""
        ),
    )
    return metrics
