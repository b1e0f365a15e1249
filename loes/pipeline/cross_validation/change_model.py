"""The paired change model of a fold (``change.model: paired``): a second network that reads the
registered subtraction of two sessions of one subject and predicts how much the Loes score
changed between them.

Subtracting two independently predicted scores adds the two scans' errors, and those errors
follow each session's acquisition (slice thickness, bias, noise, head position), not the
disease: on the synthetic main job their change MAE was worse than saying "no change". A
paired network sees both sessions at once, as LILAC does (Kim et al. 2024, "LILAC:
Learning-based Inference of Longitudinal imAge Changes"): here the later session rigidly
registered onto the earlier one and subtracted (:func:`loes.transforms.registered_subtraction`,
the subtraction MRI radiologists read for new lesions), so what is left is what changed. It is
the fold's network (``model.name``, one input channel) with targets in [-34, 34] Loes points.

Pairs, each side from its own subjects (folds keep subjects whole):

- training: every pair (earlier, later) of sessions of each training subject, not only
  consecutive ones (on the main job 2.6 times as many pairs as consecutive ones);
- model selection: every pair of the inner validation subjects (none: the last epoch is kept);
- test: the consecutive pairs of the test subjects, the ones the report and ``loes predict``
  judge.

Augmentation is the scans' spatial part only (affine, flip): the subtraction image holds
differences of intensities, which a bias field, gamma or noise drawn for it alone would
invent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import Dataset
from torch.utils.data import Subset

from loes.data import Fold
from loes.data.problems import plural
from loes.errors import LoesError
from loes.pipeline.cluster import distributed
from loes.pipeline.cross_validation.cohort import augmentation_for
from loes.pipeline.cross_validation.training import FoldData, loader, train_fold
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import memory_format
from loes.pipeline.run.inference import left_right_axis, predict
from loes.pipeline.run.messages import note
from loes.pipeline.run.predictions import CHANGE_RANGE, OOF_CHANGE_COLUMNS

__all__ = [
    "change_training_config",
    "check_fold_pairs",
    "train_change_model",
]


def change_training_config(config: Config) -> Config:
    """``config`` for the paired network: spatial augmentation only (no bias field, noise or
    gamma) and no reweighting by score (changes are not scores)."""
    augmentation = config.augmentation.model_copy(
        update={"bias_prob": 0.0, "noise_prob": 0.0, "contrast_prob": 0.0}
    )
    training = config.training.model_copy(update={"reweight": "none"})
    return config.model_copy(update={"augmentation": augmentation, "training": training})


def _positions(pairs: pd.DataFrame, subjects: list[str], consecutive: bool = False) -> list[int]:
    chosen = pairs["subject"].isin(subjects)
    if consecutive:
        chosen &= pairs["consecutive"]
    return np.flatnonzero(chosen.to_numpy()).tolist()


def check_fold_pairs(pairs: pd.DataFrame, fold: Fold) -> None:
    """Raise :class:`LoesError` naming ``fold`` unless its training subjects have 2 pairs of
    sessions or more (``pairs``: :func:`~loes.pipeline.cross_validation.cohort.session_pairs`)."""
    train = _positions(pairs, fold.train)
    if len(train) < 2:
        raise LoesError(
            f"{fold.name}: the paired change model needs training subjects with two sessions "
            f"or more, but they have {plural(len(train), 'pair')} of sessions; set "
            "change.model=subtraction (the change is then the difference of the network's two "
            "scores), or use more subjects."
        )


def train_change_model(
    pairs: pd.DataFrame,
    images: Dataset,
    fold: Fold,
    config: Config,
    folder: Path,
    device: torch.device,
    seed: int,
    label: str = "",
) -> pd.DataFrame | None:
    """Train the fold's paired network into ``folder`` (``best.pt``, ``last.pt``; resumed from
    ``last.pt``) and predict its test subjects' consecutive pairs.

    Args:
        pairs, images: the cohort's pairs of sessions and their registered subtractions
            (:class:`~loes.pipeline.cross_validation.cohort.PreprocessedCohort`'s ``pairs`` and
            ``pair_images``).

    Returns:
        The :data:`~loes.pipeline.run.predictions.OOF_CHANGE_COLUMNS` table of the test pairs
        (Loes points; flip test-time augmentation when ``cv.tta`` says so); None on ranks
        other than 0 under ``torchrun``.

    A fold whose validation subjects have no pair keeps the last epoch (no selection).

    Raises:
        LoesError: when the fold's training subjects have fewer than 2 pairs of sessions
            (``change.model=subtraction`` needs no pairs).
    """
    check_fold_pairs(pairs, fold)
    train, val = _positions(pairs, fold.train), _positions(pairs, fold.val)
    test = _positions(pairs, fold.test, consecutive=True)
    if not val:
        note(
            f"{label} change: no validation subject has two sessions, so the paired network "
            "keeps its last epoch (no model selection)"
        )
    pair_config = change_training_config(config)
    data = FoldData(
        train=Subset(images, train),
        val=Subset(images, val),
        test=Subset(images, test),
        train_scores=pairs["loes_score_change"].to_numpy()[train],
        augment=augmentation_for(pair_config, device),
        value_range=CHANGE_RANGE,
    )
    model, _ = train_fold(pair_config, data, folder, device, seed, label=f"{label} change")
    if not distributed.is_main():
        return None
    flip_axis = left_right_axis(model.spec["preprocessing"]) if config.cv.tta == "flip" else None
    predicted = predict(
        model,
        loader(data.test, config, False, device),
        device,
        config.training.mixed_precision,
        memory_format(device, config.training.memory_format),
        flip_axis,
        value_range=CHANGE_RANGE,
    )
    chosen = pairs.iloc[test].reset_index(drop=True)
    if not predicted["session"].equals(chosen["to_session"]):  # loader order is item order
        raise RuntimeError(f"{fold.name}: the change predictions came back out of order.")
    return pd.DataFrame(
        {
            "repeat": fold.repeat,
            "fold": fold.fold,
            "subject": chosen["subject"],
            "from_session": chosen["from_session"],
            "to_session": chosen["to_session"],
            "loes_score_change": chosen["loes_score_change"],
            "predicted_change": predicted["predicted"].to_numpy(),
        },
        columns=list(OOF_CHANGE_COLUMNS),
    )
