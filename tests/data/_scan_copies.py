"""One small scan written in every format loes reads: NIfTI, a DICOM series (SimpleITK/GDCM),
FreeSurfer .mgz, a NIfTI pair and an ANALYZE 7.5 pair (nibabel), and a (X, Y, Z, 1) NIfTI.

The voxels are int16 (DICOM's stored type, with the identity rescale), so every copy holds the
same numbers; the grid is LPS turned by 10 degrees (oblique), so that an axis flipped or
swapped anywhere moves voxels.
"""

from __future__ import annotations

import contextlib
import locale
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from tests.transforms._helpers import phantom, sample_world

SHAPE = (40, 48, 40)
VOXEL = 2.0  # mm
_STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def rotation(degrees: float, axis) -> np.ndarray:
    a, (x, y, z) = np.deg2rad(degrees), np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def grid(axes=(-1.0, -1.0, 1.0), degrees: float = 10.0, voxel: float = VOXEL) -> np.ndarray:
    """RAS affine of a grid centred near the origin: voxel axes along ``axes`` (signs of R, A,
    S: ``(-1, -1, 1)`` is LPS, ``(-1, 1, 1)`` LAS) turned by ``degrees``."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(degrees, (1, 2, 3)) @ np.diag(np.asarray(axes) * voxel)
    affine[:3, 3] = np.array([1.5, -2.5, 3.0]) - affine[:3, :3] @ ((np.asarray(SHAPE) - 1) / 2)
    return affine


def volume(affine: np.ndarray, seed: int = 0) -> np.ndarray:
    """The test phantom (a box with a bright marker) sampled on the grid, plus seeded noise,
    as int16."""
    noise = np.random.default_rng(seed).normal(0, 5, SHAPE)
    return np.round(sample_world(phantom, affine, SHAPE) + 20 + noise).astype(np.int16)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


@contextlib.contextmanager
def _locale_kept():
    """GDCM's DICOM writer sets the process's locale to "C" and leaves it so: Python then reads
    and writes text as ASCII. Put back what there was."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def write_dicom(
    folder: Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    uid: str = "1.2.826.0.1.3680043.8.498.11",
    description: str = "T1 MPRAGE",
    suffix: str = "",
    prefix: str = "IM",
) -> Path:
    """``data`` as a DICOM series in ``folder``, one MR slice per file (SimpleITK/GDCM), with
    the tags that place it: Image Position/Orientation (Patient), Pixel Spacing, Slice
    Thickness, Series Instance UID and Description. ``suffix`` (``""`` or ``".dcm"``) ends
    each file's name."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T))  # index (x, y, z) = (i, j, k)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    orientation = "\\".join(f"{v:.10f}" for v in (*direction[:, 0], *direction[:, 1]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    for k in range(data.shape[2]):
        piece = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
            "0008|0018": f"{uid}.{k + 1}",
            "0020|000d": _STUDY_UID,
            "0020|000e": uid,
            "0008|103e": description,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.10f}" for v in position),
            "0020|0037": orientation,
            "0018|0050": f"{spacing[2]:.10f}",
        }.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k + 1:04d}{suffix}"))
        with _locale_kept():
            writer.Execute(piece)
    return folder


def write_multiframe(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """``data`` as one multi-frame DICOM file (SimpleITK/GDCM)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetMetaData("0008|0060", "MR")
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(path))
    with _locale_kept():
        writer.Execute(image)
    return path


def write_mgz(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.MGHImage(data, affine), path)
    return path


def write_pair(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """A NIfTI pair (``.hdr`` + ``.img``), as SPM and FSL write them; ``path`` is the .hdr."""
    image = nib.Nifti1Pair(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def write_analyze(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """An ANALYZE 7.5 pair: voxel sizes only, no orientation (nor SPM's .mat)."""
    nib.save(nib.AnalyzeImage(data, affine), path)
    return path


def write_4d(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """The volume stored as (X, Y, Z, 1)."""
    return write_nifti(path, data[..., None], affine)


#: each copy: its path under a folder, and how to write it
COPIES = {
    "dicom": ("dicom_series", write_dicom),
    "dicom_dcm": ("dicom_dcm", lambda p, d, a: write_dicom(p, d, a, suffix=".dcm")),
    "multiframe": ("multiframe", write_multiframe),  # a file without extension
    "multiframe_folder": ("enhanced", lambda p, d, a: write_multiframe(_mkdir(p) / "IM1", d, a)),
    "mgz": ("orig.mgz", write_mgz),
    "pair": ("pair.hdr", write_pair),
    "4d": ("four_d.nii.gz", write_4d),
}


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_copy(kind: str, folder: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    name, write = COPIES[kind]
    written = write(folder / name, data, affine)
    return folder / name if kind == "multiframe_folder" else written
