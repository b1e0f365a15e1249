"""The profile of a run's training scans (field of view, head share, intensities after
preprocessing) that :class:`~loes.pipeline.predict.scan_profile.TrainingProfile` compares new
scans with: read from the run folder, or computed once on up to 32 of its scans and kept there."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from loes.io import write_json
from loes.pipeline.predict.preprocessed import PreprocessedScans
from loes.pipeline.predict.scan_profile import TrainingProfile
from loes.pipeline.run.data import run_table
from loes.pipeline.run.device import memory_format
from loes.pipeline.run.messages import note

if TYPE_CHECKING:
    from loes.pipeline.predict.ensemble import FoldEnsemble

__all__ = ["PROFILE_FILE", "run_profile"]

#: the training scans' profile, computed once and kept in the run folder
PROFILE_FILE = "training_profile.json"


def _scan_images(run_dir: Path) -> list[str]:
    """The image paths of a run's scans, when its source can still be read here."""
    table = run_table(run_dir)
    if table is None:
        return []
    return [p for p in table["image"] if p and Path(p).is_file()]


def _member_spreads(prepared: list[dict], ensemble: FoldEnsemble) -> list[float]:
    """The SD of the fold models' predictions (flip-averaged, Loes points) on each prepared
    scan, on the CPU; none for a single model. These scans trained all but one of the models,
    so the SDs are those of scans the models know, the yardstick of a far larger one."""
    if len(ensemble.members) < 2:
        return []
    pending = list(enumerate(prepared))
    device = torch.device("cpu")
    layout = memory_format(device, ensemble.layout)
    for member in ensemble.members:
        member.model.to(device)
    values = ensemble.member_predictions(
        pending, ensemble.members, "flip", ensemble.batch_size, device, layout
    )
    return [float(values[i].std(ddof=1)) for i, _ in pending]


def run_profile(run_dir: Path, ensemble: FoldEnsemble) -> TrainingProfile | None:
    """The run's training profile: from ``PROFILE_FILE`` when there, else computed on up to 32
    of its scans (their features, and the fold models' spread on them) and kept there (when the
    folder is writable)."""
    path = run_dir / PROFILE_FILE
    if path.is_file():
        return TrainingProfile.from_dict(json.loads(path.read_text()))
    images = _scan_images(run_dir)
    if not images:
        note(
            f"warning: the scans of {run_dir} are not readable here; scans far from them in field "
            "of view or intensity cannot be flagged."
        )
        return None
    chosen = [images[int(i)] for i in np.linspace(0, len(images) - 1, min(len(images), 32))]
    chosen = list(dict.fromkeys(chosen))
    items = [{"image": p, "subject": "", "session": "", "loes_score": np.nan} for p in chosen]
    dataset = PreprocessedScans(
        items, ensemble._transform, ensemble.spec["preprocessing"].get("pixdim")
    )
    prepared = [item for item in map(dataset.__getitem__, range(len(items))) if "input" in item]
    if not prepared:
        return None
    profile = TrainingProfile.from_features(
        [item["features"] for item in prepared], _member_spreads(prepared, ensemble)
    )
    with contextlib.suppress(OSError):  # a read-only run folder: computed again next time
        write_json(path, profile.to_dict())
    return profile
