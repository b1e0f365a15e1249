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
- model selection: every pair of the inner validation subjects;
- test: the consecutive pairs of the test subjects, the ones the report and ``loes predict``
  judge.

Augmentation is the scans' spatial part only (affine, flip): the subtraction image holds
differences of intensities, which a bias field, gamma or noise drawn for it alone would
invent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset, Dataset
from monai.transforms import Compose, DeleteItemsd
from torch.utils.data import Subset

from loes.data import Fold
from loes.data.follow_up import in_time_order
from loes.data.problems import plural
from loes.errors import LoesError
from loes.pipeline.cluster import distributed
from loes.pipeline.cross_validation.cohort import augmentation_for
from loes.pipeline.cross_validation.training import FoldData, loader, train_fold
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import available_cpus, memory_format
from loes.pipeline.run.inference import left_right_axis, predict
from loes.pipeline.run.messages import note
from loes.pipeline.run.predictions import CHANGE_RANGE, OOF_CHANGE_COLUMNS
from loes.transforms import RegisteredSubtractiond

__all__ = [
    "change_training_config",
    "preprocess_pairs",
    "session_pairs",
    "train_change_model",
]


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


def preprocess_pairs(pairs: pd.DataFrame, scans: torch.utils.data.Dataset) -> Dataset:
    """The registered subtraction of every pair, computed once (a MONAI ``CacheDataset``).

    ``scans[i]["image"]`` is the preprocessed (1, D, H, W) MetaTensor of table row ``i``;
    item ``k`` of the result is ``{"image"``: the subtraction image of pair ``k`` on its
    earlier scan's grid, ``"loes_score"``: the true change, ``"subject"``, ``"session"``: the
    later session``}``.
    """
    items = [
        {
            "earlier": scans[row.earlier]["image"],
            "later": scans[row.later]["image"],
            "loes_score": row.loes_score_change,
            "subject": row.subject,
            "session": row.to_session,
        }
        for row in pairs.itertuples()
    ]
    transform = Compose(
        [RegisteredSubtractiond("earlier", "later", "image"), DeleteItemsd(["earlier", "later"])]
    )
    start = time.perf_counter()
    cache = CacheDataset(
        items, transform, num_workers=available_cpus(), progress=sys.stderr.isatty()
    )
    if items:
        note(
            f"registered and subtracted {plural(len(items), 'pair')} of sessions once for every "
            f"fold ({time.perf_counter() - start:.0f} s)"
        )
    return cache


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
        pairs, images: :func:`session_pairs` of the run's table and their
            :func:`preprocess_pairs`.

    Returns:
        The :data:`~loes.pipeline.run.predictions.OOF_CHANGE_COLUMNS` table of the test pairs
        (Loes points; flip test-time augmentation when ``cv.tta`` says so); None on ranks
        other than 0 under ``torchrun``.

    Raises:
        LoesError: when the fold's training subjects have fewer than 2 pairs of sessions or
            its validation subjects none (``change.model=subtraction`` needs no pairs).
    """
    train, val = _positions(pairs, fold.train), _positions(pairs, fold.val)
    test = _positions(pairs, fold.test, consecutive=True)
    if len(train) < 2 or not val:
        raise LoesError(
            f"{fold.name}: the paired change model needs subjects with two sessions or more on "
            f"each side, but its training subjects have {plural(len(train), 'pair')} of sessions "
            f"and its validation subjects {len(val)}; set change.model=subtraction (the change "
            "is then the difference of the network's two scores), or use more subjects."
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
