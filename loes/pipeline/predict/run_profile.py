"""The profile of a run's training scans (field of view, head share, intensities after
preprocessing, their mean coarse picture, the fingerprint of every scan) that
:class:`~loes.pipeline.predict.scan_profile.TrainingProfile` compares new scans with.

``loes cv`` measures it when it writes the run folder, while the scans are certainly readable,
and keeps it there (``training_profile.json``), so that ``predict``, ``explain`` and ``export``
never need the training data or a working directory; the fold models' spread on the profile's
scans is added once the folds are trained. A run written by an older loes has it measured on
first use, when its scans are readable there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from loes.io import write_json
from loes.pipeline.predict.preprocessed import PreprocessedScans
from loes.pipeline.predict.scan_profile import TrainingProfile, scan_fingerprint
from loes.pipeline.run.data import run_table
from loes.pipeline.run.device import memory_format
from loes.pipeline.run.messages import note

if TYPE_CHECKING:
    from loes.pipeline.predict.ensemble import FoldEnsemble

__all__ = ["PROFILE_FILE", "PROFILE_SCANS", "measure_profile", "run_profile", "write_profile"]

#: the training scans' profile, kept in the run folder
PROFILE_FILE = "training_profile.json"
#: the most scans the features, pictures and spreads are measured on (evenly spaced in the table)
PROFILE_SCANS = 32


def _prepared(images: list[str], transform, pixdim) -> list[dict]:
    """The scans of ``images`` preprocessed as the ensemble does, those that could be."""
    items = [{"image": p, "subject": "", "session": "", "loes_score": np.nan} for p in images]
    dataset = PreprocessedScans(items, transform, pixdim)
    return [item for item in map(dataset.__getitem__, range(len(items))) if "input" in item]


def measure_profile(table: pd.DataFrame, transform, pixdim) -> TrainingProfile | None:
    """The profile of the scans of ``table`` (``image``, ``subject``, ``session``) under the
    run's preprocessing ``transform`` (voxel size ``pixdim``, mm): features and pictures of up
    to :data:`PROFILE_SCANS` of them, the fingerprint of each; None when none is readable."""
    readable = table[[bool(p) and Path(p).exists() for p in table["image"]]]
    images = list(dict.fromkeys(readable["image"]))
    if not images:
        return None
    positions = np.linspace(0, len(images) - 1, min(len(images), PROFILE_SCANS))
    prepared = _prepared(list(dict.fromkeys(images[int(i)] for i in positions)), transform, pixdim)
    if not prepared:
        return None
    known = {item["image"]: item["fingerprint"] for item in prepared}  # read once already
    fingerprints = {
        known.get(row.image) or scan_fingerprint(row.image): " ".join(
            s for s in (row.subject, row.session) if s
        )
        for row in readable.itertuples()
    }
    fingerprints.pop(None, None)
    return TrainingProfile.from_features(
        [item["features"] for item in prepared],
        pictures=[item["picture"] for item in prepared],
        fingerprints=fingerprints,
        scans=[item["image"] for item in prepared],
    )


def write_profile(run_dir: Path, table: pd.DataFrame, transform, pixdim) -> None:
    """Measure the profile of a new run's scans (:func:`measure_profile`) into
    ``run_dir/training_profile.json``, unless it is there."""
    path = Path(run_dir) / PROFILE_FILE
    if not path.is_file():
        profile = measure_profile(table, transform, pixdim)
        if profile is not None:
            write_json(path, profile.to_dict())


def _member_spreads(prepared: list[dict], ensemble: FoldEnsemble) -> list[float]:
    """The SD of the fold models' predictions (flip-averaged, Loes points) on each prepared
    scan, on the CPU. These scans trained all but one of the models, so the SDs are those of
    scans the models know, the yardstick of a far larger one."""
    pending = list(enumerate(prepared))
    device = torch.device("cpu")
    layout = memory_format(device, ensemble.layout)
    for member in ensemble.members:
        member.model.to(device)
    values = ensemble.member_predictions(
        pending, ensemble.members, "flip", ensemble.batch_size, device, layout
    )
    return [float(values[i].std(ddof=1)) for i, _ in pending]


def _measured_here(run_dir: Path, ensemble: FoldEnsemble) -> TrainingProfile | None:
    """The profile of an older run folder, measured on its scans when they are readable here."""
    try:
        table = run_table(run_dir)
    except Exception:  # an unreadable source: said below
        table = None
    pixdim = ensemble.spec["preprocessing"].get("pixdim")
    profile = None if table is None else measure_profile(table, ensemble.preprocessing, pixdim)
    if profile is None:
        note(
            f"warning: {run_dir} has no {PROFILE_FILE} and its scans are not readable here; "
            "scans unlike them cannot be screened, and every prediction says so."
        )
    return profile


def run_profile(run_dir: Path, ensemble: FoldEnsemble) -> TrainingProfile | None:
    """The run's training profile from ``PROFILE_FILE`` (or measured, for an older run whose
    scans are readable here), completed with the fold models' spread on its scans when it
    lacks it and they are readable; kept in the run folder when it is writable. None when
    there is none and the scans are not readable."""
    path = Path(run_dir) / PROFILE_FILE
    if path.is_file():
        profile = TrainingProfile.from_dict(json.loads(path.read_text()))
    else:
        profile = _measured_here(Path(run_dir), ensemble)
        if profile is None:
            return None
    before = profile
    images = [p for p in profile.scans or [] if Path(p).exists()]
    if profile.spread_p95 is None and len(ensemble.members) > 1 and images:
        pixdim = ensemble.spec["preprocessing"].get("pixdim")
        spreads = _member_spreads(_prepared(images, ensemble.preprocessing, pixdim), ensemble)
        profile = dataclasses.replace(profile, spread_p95=float(np.percentile(spreads, 95)))
    if profile is not before or not path.is_file():
        with contextlib.suppress(OSError):  # a read-only run folder: measured again next time
            write_json(path, profile.to_dict())
    return profile
