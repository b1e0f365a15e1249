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

- training: every pair (earlier, later) of sessions of each training and inner validation
  subject, not only consecutive ones (on the main job 2.6 times as many pairs as consecutive
  ones); the last epoch is kept, with no model selection: on the main job, two new training
  seeds gave change MAE 0.318 and ROC AUC 0.958 on average, against 0.349 and 0.941 for
  selection on the validation subjects' pairs without thick slices (``docs/limitations.md``);
- test: the consecutive pairs of the test subjects, the ones the report and ``loes predict``
  judge.

Augmentation is the scans' spatial part only (affine, flip): the subtraction image holds
differences of intensities, which a bias field, gamma or noise drawn for it alone would
invent; and thick slices (``change.thick_slices``,
:class:`~loes.pipeline.cross_validation.thick_slices.ThickSlicePairs`), which change both.
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
from loes.pipeline.cross_validation.thick_slices import ThickSlicePairs
from loes.pipeline.cross_validation.training import FoldData, loader, train_fold
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import memory_format
from loes.pipeline.run.inference import left_right_axis, predict
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
    """Raise :class:`LoesError` naming ``fold`` unless its training and inner validation
    subjects, which the paired network trains on, have 2 pairs of sessions or more (``pairs``:
    :func:`~loes.pipeline.cross_validation.cohort.session_pairs`)."""
    train = _positions(pairs, [*fold.train, *fold.val])
    if len(train) < 2:
        raise LoesError(
            f"{fold.name}: the paired change model needs training and validation subjects with "
            f"two sessions or more, but they have {plural(len(train), 'pair')} of sessions; set "
            "change.model=subtraction (the change is then the difference of the network's two "
            "scores), or use more subjects."
        )


def train_change_model(
    pairs: pd.DataFrame,
    images: Dataset,
    scans: Dataset,
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
        scans: the cohort's preprocessed scans (its ``cache``), from which thick slices are
            simulated.

    Returns:
        The :data:`~loes.pipeline.run.predictions.OOF_CHANGE_COLUMNS` table of the test pairs
        (Loes points; flip test-time augmentation when ``cv.tta`` says so); None on ranks
        other than 0 under ``torchrun``.

    Raises:
        LoesError: when the fold's training and inner validation subjects have fewer than 2
            pairs of sessions (``change.model=subtraction`` needs no pairs).
    """
    check_fold_pairs(pairs, fold)
    train = _positions(pairs, [*fold.train, *fold.val])  # no model selection: see above
    test = _positions(pairs, fold.test, consecutive=True)
    pair_config = change_training_config(config)
    if config.change.thick_slices > 0:
        earlier = pairs["earlier"].to_numpy()[train].tolist()
        pixdim = config.preprocessing.pixdim
        thick = config.change.thick_slices
        training = ThickSlicePairs(Subset(images, train), scans, earlier, pixdim, thick)
    else:
        training = Subset(images, train)
    data = FoldData(
        train=training,
        val=Subset(images, []),  # none: the last epoch is kept
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
