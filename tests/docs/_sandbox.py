"""The folder the documentation's code blocks run in: what the pages assume a user has, at
tiny scale.

- ``configs/*.yaml``: each shipped configuration with the tiny settings of :data:`TINY` laid
  over it (SFCN at 4 mm on a 32x40x32 box, 2 folds x 2 epochs on the CPU; the synthetic cohort
  8 subjects at 4 mm), so ``loes cv --config configs/cpu.yaml`` runs in seconds and the
  data settings of ``configs/own-data.yaml`` are the shipped ones;
- ``runs/synthetic-cpu``: that main job, finished (as after ``make cv``), and the synthetic
  cohort it generated under ``.cache/loes``;
- ``data/scores.csv`` and ``data/images/``: a lab's table of scores (``subject``, ``session``,
  ``image``, ``loes_score``, ``gd``) and a flat folder of its NIfTI files;
- ``new_scans/``: a small synthetic cohort (BIDS; its ``manifest.csv`` lists 3 of the scans,
  with their lesion masks);
- single scans the pages name: ``t1.nii.gz`` and its ``lesions.nii.gz``, ``sub-01_T1w.nii.gz``,
  ``scan1.nii.gz``, a DICOM series ``dicom/sub-01_t1_mprage/``, ``sub-02/mri/orig.mgz`` and
  the NIfTI pair ``sub-03_T1w.hdr``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from tests.data._scan_copies import write_dicom, write_mgz, write_pair
from tests.docs._blocks import REPO

#: laid over every shipped configuration
TINY = {
    "device": "cpu",
    "model.name": "sfcn",
    "preprocessing.pixdim": [4.0, 4.0, 4.0],
    "preprocessing.spatial_size": [32, 40, 32],
    "preprocessing.cache": "memory",
    "training.epochs": 2,
    "training.batch_size": 4,
    "training.patience": 5,
    "training.amp": False,
    "cv.folds": 2,
    "cv.repeats": 1,
    "cv.val_fraction": 0.25,
}
#: laid over the configurations of the built-in synthetic cohort
TINY_SYNTHETIC = {"data.synthetic_subjects": 8, "data.synthetic_resolution": 4.0}


def _set(settings: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        settings = settings.setdefault(part, {})
    settings[leaf] = value


def write_configs(folder: Path) -> None:
    """Each of the repository's ``configs/*.yaml`` with :data:`TINY` laid over it."""
    (folder / "configs").mkdir(parents=True)
    for shipped in sorted((REPO / "configs").glob("*.yaml")):
        settings = yaml.safe_load(shipped.read_text())
        extra = TINY if settings.get("data", {}).get("source") else {**TINY, **TINY_SYNTHETIC}
        for dotted, value in extra.items():
            _set(settings, dotted, value)
        (folder / "configs" / shipped.name).write_text(yaml.safe_dump(settings, sort_keys=False))


def write_lab_data(folder: Path, cohort: Path) -> None:
    """``data/scores.csv`` and ``data/images/`` as a lab keeps them, from a tiny cohort's
    manifest: ids without ``sub-``, one flat folder of images."""
    manifest = pd.read_csv(cohort, dtype={"subject": str, "session": str})
    images = folder / "data" / "images"
    images.mkdir(parents=True)
    rows = []
    for row in manifest.itertuples():
        subject, session = row.subject.removeprefix("sub-"), row.session.removeprefix("ses-")
        name = f"{subject}_{session}_T1w.nii.gz"
        shutil.copy(cohort.parent / row.image, images / name)
        rows.append((subject, session, name, row.loes_score, row.gd))
    table = pd.DataFrame(rows, columns=["subject", "session", "image", "loes_score", "gd"])
    table.to_csv(folder / "data" / "scores.csv", index=False)


def write_single_scans(folder: Path, cohort: Path) -> None:
    """The single scans the pages name, copied or converted from the cohort's first scan with
    lesions."""
    manifest = pd.read_csv(cohort)
    row = manifest[manifest["loes_score"] > 0].iloc[0]
    scan, mask = cohort.parent / row["image"], cohort.parent / row["lesion_mask"]
    for name in ("t1.nii.gz", "sub-01_T1w.nii.gz", "scan1.nii.gz"):
        shutil.copy(scan, folder / name)
    shutil.copy(mask, folder / "lesions.nii.gz")
    # the table of new scans names 3 of them, one without lesions (so explaining them is quick)
    chosen = pd.concat(
        [
            manifest[manifest["loes_score"] == 0].head(1),
            manifest[manifest["loes_score"] > 0].head(2),
        ]
    )
    chosen.to_csv(cohort, index=False)
    image = nib.load(scan)
    data, affine = np.asarray(image.dataobj).astype(np.int16), image.affine
    write_dicom(folder / "dicom" / "sub-01_t1_mprage", data, affine)
    (folder / "sub-02" / "mri").mkdir(parents=True)
    write_mgz(folder / "sub-02" / "mri" / "orig.mgz", data, affine)
    write_pair(folder / "sub-03_T1w.hdr", data, affine)


def command_shims(folder: Path) -> dict[str, str]:
    """The environment the bash blocks run in: ``loes`` and ``python`` are this interpreter
    with this checkout first on its path."""
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    for name, command in {"loes": "-m loes", "python": ""}.items():
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command} "$@"\n')
        shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "MPLBACKEND": "Agg",
    }
