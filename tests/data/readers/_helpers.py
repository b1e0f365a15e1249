"""Tiny datasets on disk for the reader tests: NIfTI volumes, manifests, error lists."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from loes.data import validate_dataset


def write_nifti(path: Path, seed: int = 0) -> Path:
    """A tiny random 3D volume at 4 mm (a 48 mm cube)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random((12, 12, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])), path)
    return path


def write_manifest(folder: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    """Write ``rows`` as a manifest, creating every image named in them."""
    for i, row in enumerate(rows):
        image = Path(row["image"])
        write_nifti(image if image.is_absolute() else folder / image, seed=i)
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return path


def manifest_rows() -> list[dict]:
    return [
        {
            "subject": "sub-007",
            "session": "ses-01",
            "image": "images/sub-007_ses-01.nii.gz",
            "loes_score": 0,
            "age": 6.5,
            "site": "A",
            "pattern": "posterior",
            "corpus_callosum_splenium": 0.0,
        },
        {
            "subject": "sub-007",
            "session": "ses-02",
            "image": "images/sub-007_ses-02.nii.gz",
            "loes_score": 4.5,
            "age": 7.0,
            "site": "A",
            "pattern": "posterior",
            "corpus_callosum_splenium": 1.0,
        },
        {
            "subject": "sub-012",
            "session": "ses-01",
            "image": "images/sub-012_ses-01.nii.gz",
            "loes_score": 12,
            "age": 9.0,
            "site": "B",
            "pattern": "anterior",
            "corpus_callosum_splenium": 0.5,
        },
    ]


def errors_of(source: Path, **options) -> list[str]:
    """``validate_dataset``'s errors as ``"where: message"`` lines."""
    return [f"{p.where}: {p.message}" for p in validate_dataset(source, **options).errors]
