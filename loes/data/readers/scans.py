"""Scans in the formats labs hold, opened as nibabel images with their RAS affine.

=========  ================================================  ==============================
format     what                                              read by
=========  ================================================  ==============================
nifti      ``.nii``, ``.nii.gz``                             ``nibabel.load`` (Nifti1Image)
pair       ``.hdr`` + ``.img`` (SPM/FSL NIfTI pair, or       ``nibabel.load`` (Nifti1Pair;
           ANALYZE 7.5, which holds no orientation)          AnalyzeImage)
mgh        FreeSurfer ``.mgz``, ``.mgh``                     ``nibabel.load`` (MGHImage)
dicom      a folder holding one series (files with or        SimpleITK/GDCM
           without ``.dcm``), or one multi-frame file        (:mod:`.dicom`)
=========  ================================================  ==============================

A 3D volume stored with trailing axes of size 1, (X, Y, Z, 1), is one volume:
:func:`load_scan` squeezes it (``nibabel.squeeze_image``); a series of volumes (T > 1) is
not a scan.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import nibabel as nib

from loes.data.readers.dicom import (
    DICOM_SUFFIXES,
    DicomReadError,
    has_dicom_files,
    is_dicom_file,
    read_dicom,
)
from loes.data.readers.files import DOES_NOT_EXIST, exception_text, unreachable_text
from loes.errors import LoesError

__all__ = [
    "FORMATS_TEXT",
    "SCAN_FORMATS",
    "ScanError",
    "as_nifti",
    "find_scans",
    "format_by_name",
    "load_scan",
    "open_scan",
    "scan_format",
    "scan_stem",
    "squeezed_shape",
]

#: each format :func:`scan_format` tells, as messages name it
SCAN_FORMATS = {
    "nifti": "NIfTI (.nii, .nii.gz)",
    "pair": "a NIfTI or ANALYZE pair (.hdr + .img)",
    "mgh": "FreeSurfer MGH (.mgz, .mgh)",
    "dicom": "DICOM (a folder holding one series, or a multi-frame file)",
}
_SUFFIXES = {
    **{suffix: "nifti" for suffix in (".nii", ".nii.gz")},
    **{suffix: "pair" for suffix in (".hdr", ".img", ".hdr.gz", ".img.gz")},
    **{suffix: "mgh" for suffix in (".mgz", ".mgh", ".mgh.gz")},
    **{suffix: "dicom" for suffix in DICOM_SUFFIXES},
}
_SUFFIX = re.compile(
    "(" + "|".join(re.escape(s) for s in sorted(_SUFFIXES, key=len, reverse=True)) + ")$",
    flags=re.IGNORECASE,
)

#: the formats, as a message lists them
FORMATS_TEXT = (
    "NIfTI (.nii, .nii.gz), a .hdr/.img pair, FreeSurfer .mgz/.mgh, or DICOM (the folder of "
    "one series, or a multi-frame file)"
)
_NAMES = {"nifti": "NIfTI", "pair": "NIfTI/ANALYZE pair", "mgh": "MGH", "dicom": "DICOM"}
_PAIR_IMAGE = re.compile(r"\.img(\.gz)?$")


class ScanError(LoesError):
    """A scan that cannot be opened: ``path``, and ``reason``, the text that follows it (``"is
    not an image loes reads ..."``); the message is both."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path} {reason}")


def format_by_name(path: str | os.PathLike) -> str | None:
    """The format a file name says (a key of :data:`SCAN_FORMATS`, any case), or ``None``.

    Examples::

        >>> format_by_name("orig.mgz"), format_by_name("T1.HDR"), format_by_name("notes.csv")
        ('mgh', 'pair', None)
    """
    match = _SUFFIX.search(str(path))
    return _SUFFIXES[match.group(1).lower()] if match else None


def scan_format(path: str | os.PathLike) -> str | None:
    """The format of ``path``: by its name, else ``"dicom"`` for a folder that holds DICOM
    files and for a DICOM file without extension (its ``DICM`` marker); ``None`` otherwise."""
    known = format_by_name(path)
    if known is not None:
        return known
    path = Path(path)
    if path.is_dir():
        return "dicom" if has_dicom_files(path) else None
    return "dicom" if is_dicom_file(path) else None


def scan_stem(path: str | os.PathLike) -> str:
    """The file name without its scan extension (``orig`` of ``orig.mgz``); a folder's name."""
    return _SUFFIX.sub("", Path(path).name) or Path(path).name


def squeezed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without trailing axes of size 1 beyond the third, as
    ``nibabel.squeeze_image`` drops them: (X, Y, Z, 1) -> (X, Y, Z)."""
    shape = tuple(int(n) for n in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def open_scan(path: str | os.PathLike, **kwargs) -> nib.spatialimages.SpatialImage:
    """The scan at ``path`` as nibabel opens it: lazily for nibabel's formats (only the header is
    read; ``kwargs`` go to ``nibabel.load``), in memory for DICOM (:func:`.dicom.read_dicom`).

    Raises:
        ScanError: the path is no scan of :data:`SCAN_FORMATS`, cannot be reached, or cannot
            be read; its ``reason`` says what to do.
    """
    kind = scan_format(path)
    if kind is None or (kind != "dicom" and Path(path).is_dir()):
        raise ScanError(path, _not_a_scan(Path(path)))
    reason = unreachable_text(path)
    if reason is not None:
        raise ScanError(path, reason)
    if kind == "dicom":
        try:
            return read_dicom(path)
        except DicomReadError as error:
            raise ScanError(path, str(error)) from None
    missing = _missing_partner(Path(path)) if kind == "pair" else None
    if missing:
        raise ScanError(
            path, f"has no {missing} beside it; a .hdr/.img pair needs both files: copy it."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nib.load(path, **kwargs)
    except Exception as error:  # nibabel raises many types for broken files; name them all
        raise ScanError(
            path,
            f"is not a readable {_NAMES[kind]} image ({exception_text(error)}); "
            "export it again or convert it to NIfTI with nibabel or SimpleITK.",
        ) from None


def load_scan(path: str | os.PathLike, **kwargs) -> nib.spatialimages.SpatialImage:
    """:func:`open_scan`, with a (X, Y, Z, 1) volume squeezed to (X, Y, Z)
    (``nibabel.squeeze_image``, which reads its voxels); the affine is the scan's RAS affine
    (nibabel's ``image.affine``).

    Raises:
        ScanError: as :func:`open_scan`.

    Examples::

        >>> image = load_scan("sub-01/mri/orig.mgz")  # doctest: +SKIP
        >>> image.shape, nib.aff2axcodes(image.affine)  # doctest: +SKIP
        ((256, 256, 256), ('L', 'I', 'A'))
    """
    image = open_scan(path, **kwargs)
    if squeezed_shape(image.shape) != tuple(image.shape):
        image = nib.squeeze_image(image)
    return image


def as_nifti(image: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """``image`` as a ``Nifti1Image`` (itself when it is one), with its affine, voxels (lazily)
    and what its header shares with NIfTI (``nibabel``'s ``Nifti1Image.from_image``)."""
    if type(image) is nib.Nifti1Image:
        return image
    return nib.Nifti1Image.from_image(image)


def find_scans(folder: str | os.PathLike) -> list[Path]:
    """Every scan under ``folder``, sorted: NIfTI and MGH files, the ``.hdr`` of each pair (an
    ``.img`` without one too, to be reported), and each folder (``folder`` included) that holds
    DICOM files, as one scan. Hidden files and folders (``.*``) are skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        here = Path(root)
        names = {name.lower() for name in files}
        if has_dicom_files(here):
            found.append(here)
        for name in files:
            kind = format_by_name(name)
            if name.startswith(".") or kind in (None, "dicom"):
                continue
            stem, suffix = _PAIR_IMAGE.subn("", name.lower())
            if kind == "pair" and suffix and {f"{stem}.hdr", f"{stem}.hdr.gz"} & names:
                continue  # read through its .hdr
            found.append(here / name)
    return sorted(found)


def _missing_partner(path: Path) -> str | None:
    """The name of the other file of a ``.hdr``/``.img`` pair when neither its plain nor its
    gzipped version is beside ``path``."""
    stem, _ = re.subn(r"\.(hdr|img)(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    other = "img" if re.search(r"\.hdr(\.gz)?$", path.name, flags=re.IGNORECASE) else "hdr"
    names = [f"{stem}.{other}", f"{stem}.{other}.gz", f"{stem}.{other.upper()}"]
    if any((path.parent / name).exists() for name in names):
        return None
    return names[0]


def _not_a_scan(path: Path) -> str:
    if path.is_dir():
        return (
            "is a folder, not an image file, and holds no DICOM file; point to a scan inside "
            "(NIfTI, .hdr/.img, .mgz/.mgh), or to the folder of one DICOM series."
        )
    reason = unreachable_text(path)
    if reason not in (None, DOES_NOT_EXIST):
        return reason
    return (
        f"is not an image loes reads: give {FORMATS_TEXT}; convert other formats to NIfTI "
        "(.nii.gz), e.g. with nibabel or SimpleITK."
    )
