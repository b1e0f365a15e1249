"""DICOM scans read with SimpleITK (GDCM): a folder holding one series, or one multi-frame file.

SimpleITK is a core dependency already, and its ``ImageSeriesReader`` is ITK's DICOM reader:
GDCM groups a folder's files by Series Instance UID (``GetGDCMSeriesIDs``), sorts each series
along the slice normal by Image Position (Patient) (``GetGDCMSeriesFileNames``), applies the
Rescale Slope/Intercept and reports slices missing or unevenly spaced. MONAI's
``PydicomReader`` would add pydicom and its own slice sorting for the same result. The image
comes back in LPS (DICOM's patient space) and is turned into a RAS affine for nibabel and MONAI.

Every function here stays silent: ITK's warnings (a missing slice, a folder without series)
become the error of the scan they concern, never lines on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

__all__ = [
    "DICOM_SUFFIXES",
    "DicomReadError",
    "DicomSeries",
    "dicom_series",
    "has_dicom_files",
    "is_dicom_file",
    "read_dicom",
    "series_listing",
]

#: file name endings that say DICOM without looking inside (Siemens exports ``.IMA``)
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_PREAMBLE = 128  # a DICOM file (Part 10) starts with a 128-byte preamble, then b"DICM"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DESCRIPTION, _POSITION = "0008|103e", "0020|0032"
#: ITK flags any deviation of the slice positions from a regular grid, rounding included
_NON_UNIFORM = "ITK_non_uniform_sampling_deviation"
#: gaps between slices further than this fraction of the spacing from it are refused
_GAP_TOLERANCE = 0.01
_quiet_lock = threading.Lock()
_quiet_state = {"depth": 0, "previous": True}  # readers in flight; the setting before them


class DicomReadError(ValueError):
    """Why a DICOM scan cannot be read, as text that follows its path (``"holds 2 DICOM
    series ..."``)."""


@dataclass(frozen=True)
class DicomSeries:
    """One series of a folder: its Series Instance UID, Series Description (``""`` when the
    files hold none) and files, sorted along the slice normal."""

    uid: str
    description: str
    files: tuple[str, ...]

    def __str__(self) -> str:
        described = f' "{self.description}"' if self.description else ""
        return f"{self.uid}{described} ({len(self.files)} files)"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file named like DICOM (``.dcm``, ``.dicom``, ``.ima``) or holding
    the ``DICM`` marker after its 128-byte preamble (DICOM Part 10), whatever its name."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        if path.name.lower().endswith(DICOM_SUFFIXES):
            return True
        with open(path, "rb") as handle:
            handle.seek(_PREAMBLE)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def has_dicom_files(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` itself (not its subfolders) holds a DICOM file (:func:`is_dicom_file`;
    a ``DICOMDIR`` index alone is no image)."""
    try:
        return any(
            entry.name.upper() != "DICOMDIR" and is_dicom_file(entry.path)
            for entry in os.scandir(folder)
        )
    except OSError:
        return False


def dicom_series(folder: str | os.PathLike) -> list[DicomSeries]:
    """The DICOM series in ``folder`` itself (not its subfolders), as GDCM groups them.

    Returns an empty list when the folder holds no DICOM image (a ``DICOMDIR`` alone, say).
    """
    with _quiet():
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        found = []
        for uid in uids:
            files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
            found.append(DicomSeries(uid, _description(files[0]) if files else "", files))
    return found


def series_listing(series: list[DicomSeries]) -> str:
    """The error text of a folder holding several series: each named, and what to do."""
    return (
        f"holds {len(series)} DICOM series ({'; '.join(map(str, series))}); a scan is one "
        "series: move each series into a folder of its own (dcm2niix or your PACS export can "
        "sort them) and give the T1-weighted series' folder."
    )


def read_dicom(path: str | os.PathLike) -> nib.Nifti1Image:
    """Read a DICOM scan: a folder holding one series, or a single multi-frame file.

    Returns an in-memory ``Nifti1Image`` (voxel ``[i, j, k]`` = DICOM column, row, slice)
    whose affine (also its sform, code 1) maps voxels to RAS mm: ITK's LPS origin, direction
    and spacing with x and y negated. Voxel values are stored values after Rescale
    Slope/Intercept (int16 stays int16 when the rescale is the identity).

    Raises:
        DicomReadError: the folder holds no series or several (each listed: UID, description,
            number of files), a single file holds one 2D slice, the slices are unevenly
            spaced or missing, or GDCM cannot read the files; the text says what to do.
    """
    path = Path(path)
    with _quiet():
        files = [str(path)]
        if path.is_dir():
            series = dicom_series(path)
            if not series:
                raise DicomReadError(
                    "holds no DICOM image series (GDCM finds no Series Instance UID in its "
                    "files); give the folder that holds the slices of one series."
                )
            if len(series) > 1:
                raise DicomReadError(series_listing(series))
            files = list(series[0].files)
        if len(files) > 1:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            reader.MetaDataDictionaryArrayUpdateOn()  # each slice's position, for the gaps
        else:  # a multi-frame file (a series reader would add a fourth axis)
            reader = sitk.ImageFileReader()
            reader.SetImageIO("GDCMImageIO")
            reader.SetFileName(files[0])
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise DicomReadError(f"cannot be read as DICOM ({_itk_reason(error)}).") from None
    if image.GetDimension() == 3 and image.GetSize()[2] == 1:
        size = f"{image.GetSize()[0]} x {image.GetSize()[1]}"
        raise DicomReadError(
            f"holds one 2D DICOM slice ({size}), not a 3D scan; copy every slice of its series "
            "into this folder."
            if path.is_dir()
            else f"is one 2D DICOM slice ({size}), not a 3D scan; give the folder that holds "
            f"its series ({path.parent})."
        )
    if len(files) > 1 and image.HasMetaDataKey(_NON_UNIFORM):  # any deviation, rounding too
        gaps = _slice_gaps(reader, image)
        step = image.GetSpacing()[2]
        if gaps.size and np.abs(gaps - step).max() > _GAP_TOLERANCE * step:
            raise DicomReadError(
                f"has slices that are missing or unevenly spaced (gaps of {gaps.min():.3g} to "
                f"{gaps.max():.3g} mm between their Image Position (Patient)), so no voxel grid "
                "holds them; export the series again, complete, or convert it with dcm2niix, "
                "which reports the gaps."
            )
    return _to_nibabel(image)


def _slice_gaps(reader: sitk.ImageSeriesReader, image: sitk.Image) -> np.ndarray:
    """The distances (mm) between consecutive slices along the slice normal, from each file's
    Image Position (Patient)."""
    normal = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    positions = []
    for index in range(len(reader.GetFileNames())):
        if not reader.HasMetaDataKey(index, _POSITION):
            return np.array([])
        text = reader.GetMetaData(index, _POSITION).replace("\\", " ").split()
        positions.append([float(v) for v in text])
    return np.diff(np.asarray(positions) @ normal)


def _to_nibabel(image: sitk.Image) -> nib.Nifti1Image:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DicomReadError(
            f"holds a {image.GetDimension()}D image of {image.GetNumberOfComponentsPerPixel()}"
            "-component voxels; a scan is one 3D grey-value volume."
        )
    lps = np.eye(4)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps[:3, :3] = direction * np.array(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    affine = _LPS_TO_RAS @ lps
    data = sitk.GetArrayFromImage(image).T  # ITK's array is [slice, row, column]
    nifti = nib.Nifti1Image(data, affine)
    nifti.set_sform(affine, code=1)  # scanner coordinates, as dcm2niix writes them
    nifti.set_qform(affine, code=1)
    return nifti


def _description(file: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(_DESCRIPTION).strip() if reader.HasMetaDataKey(_DESCRIPTION) else ""


def _itk_reason(error: RuntimeError) -> str:
    """The last line of ITK's message (the first ones are the C++ source location)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text.split("): ", 1)[-1] if "ITK ERROR" in text else text


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ITK's warnings off while any thread reads DICOM (they print to stderr); the previous
    setting back when the last one is done."""
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            _quiet_state["previous"] = sitk.ProcessObject.GetGlobalWarningDisplay()
            sitk.ProcessObject.SetGlobalWarningDisplay(False)
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                sitk.ProcessObject.SetGlobalWarningDisplay(_quiet_state["previous"])
