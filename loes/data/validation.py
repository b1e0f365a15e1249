"""Check a dataset before any training: the table, then every image, every problem at once.

Header checks read only the scan's header (and, for ``.nii.gz`` and ``.mgz``, the 4-byte length
stored at the end of the gzip stream; a DICOM series is read whole), so checking hundreds of
scans takes seconds. ``deep=True`` reads every voxel: NaN/inf, empty or constant volumes,
corrupt compressed data. Every format of :mod:`loes.data.readers.scans` gets the same header
checks (:mod:`loes.data.image_checks`).
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from loes.data.image_checks import DEFAULT_PIXDIM, MAX_VOXEL_MM, MIN_VOXEL_MM, header_problems
from loes.data.problems import Problem, Severity, ValidationReport, plural
from loes.data.readers import read_table
from loes.data.readers.files import (
    DOES_NOT_EXIST,
    exception_text,
    os_error_text,
    placeholder_text,
    unreachable_text,
)
from loes.data.readers.scans import ScanError, open_scan, scan_format
from loes.data.scan_sources import is_scan_source, read_scans
from loes.errors import LoesError

__all__ = ["DEFAULT_PIXDIM", "MAX_VOXEL_MM", "MIN_VOXEL_MM", "check_image", "validate_dataset"]

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22
#: what follows an MGH file's voxels: TR, flip angle, TE, TI and field of view as float32
_MGH_FOOTER = 20


def validate_dataset(
    source: str | os.PathLike,
    deep: bool = False,
    *,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
    workers: int | None = None,
    pixdim: float | Sequence[float] = DEFAULT_PIXDIM,
) -> ValidationReport:
    """Check the table and every image of ``source``; never raises for bad data.

    Args:
        source: a manifest, the lab's CSV or a BIDS folder (see ``load_dataset``), or scans as
            ``loes predict`` takes them: a scan file or a folder of scans (every scan checked;
            no table, so no score).
        deep: read every voxel, not just the headers.
        workers: threads reading images (default: up to 8).
        pixdim: voxel size in mm (x, y, z, or one for all) the scans will be resampled to, the
            preprocessing's ``pixdim``: an impossible field of view is reported with the size
            the scan would become.

    Examples::

        >>> report = validate_dataset("data/manifest.csv")  # doctest: +SKIP
        >>> report.ok, len(report.warnings)  # doctest: +SKIP
        (True, 0)
        >>> print(report.text())  # doctest: +SKIP
    """
    if is_scan_source(source):  # a scan or a folder of scans, as `loes predict` takes them
        return _validate_scans(source, deep, workers, pixdim)
    reading = read_table(source, format, images_dir, include_gd, suffix)
    report = ValidationReport(str(source), reading.format, list(reading.problems), deep=deep)
    if reading.table is None:
        return report
    _check_images(report, source, reading.table, reading.where, deep, workers, pixdim)
    report.table = reading.table
    report.set_aside = reading.set_aside
    return report


def _validate_scans(source, deep: bool, workers, pixdim) -> ValidationReport:
    """The report of a scan file or a folder of scans: each scan's checks."""
    report = ValidationReport(str(source), "scans", [], deep=deep)
    try:
        table = read_scans([source])
    except LoesError as error:
        report.problems.append(Problem("error", str(source), str(error)))
        return report
    base = _display_base(source)
    where = [_display(str(image), base) for image in table["image"]]
    _check_images(report, source, table, where, deep, workers, pixdim)
    report.table = table
    return report


def _check_images(report, source, table, where_of, deep: bool, workers, pixdim) -> None:
    """Check each image of ``table`` once, at the first row naming it, into ``report``."""
    first_where: dict[str, str] = {}
    for image, where in zip(table["image"], where_of, strict=True):
        if image and image not in first_where and os.path.exists(image):
            first_where[image] = where
    images = list(first_where)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        checked = pool.map(lambda p: check_image(p, deep, pixdim), images)
        found = dict(zip(images, checked, strict=True))
    base = _display_base(source)
    for image, where in first_where.items():
        shown = _display(image, base)
        place = shown if shown == where else f"{shown} ({where})"
        report.problems += [Problem(severity, place, message) for severity, message in found[image]]
    report.problems.sort(key=lambda p: p.severity != "error")


def check_image(
    path: str | os.PathLike, deep: bool = False, pixdim: float | Sequence[float] = DEFAULT_PIXDIM
) -> list[tuple[Severity, str]]:
    """Problems of one scan as ``(severity, message)``; empty when it looks fine.

    ``path`` is a scan in one of :data:`loes.data.readers.scans.SCAN_FORMATS`: a NIfTI file,
    either file of a ``.hdr``/``.img`` pair, an ``.mgz``/``.mgh``, the folder of one DICOM
    series or a multi-frame DICOM file. The header checks (:func:`header_problems`) are the
    same for every format; the file checks (empty, truncated, misnamed, a pointer never
    fetched) are each format's. The geometry checked is nibabel's ``image.affine`` (for NIfTI
    the sform when ``sform_code > 0``, else the qform; for DICOM, ITK's geometry in RAS), the
    affine ``loes.transforms.preprocessing`` uses; ``pixdim`` (mm) is the voxel size the scan
    will be resampled to (see :func:`validate_dataset`). Only headers are read, except for
    DICOM (the series is read whole); ``deep`` reads every voxel.
    """
    path = Path(path)
    kind = scan_format(path)
    if not path.is_dir():  # a folder is a DICOM series, or the reason it is not
        try:
            size = path.stat().st_size
            with open(path, "rb") as handle:
                head = handle.read(64)
        except OSError as error:  # a broken link, permission denied...: say which
            return [("error", os_error_text(path, error))]
        if size == 0:
            return [("error", "is empty (0 bytes); copy it again from the source.")]
        if pointer := placeholder_text(path, head):
            return [("error", pointer)]
        misnamed = _misnamed_nifti(path, head[:2]) if kind == "nifti" else None
        if misnamed:
            return [("error", misnamed)]
    try:
        image = open_scan(path)
    except ScanError as error:
        return [("error", error.reason)]
    if kind == "nifti" and not isinstance(image, nib.Nifti1Pair):
        return [("error", f"is a {type(image).__name__}, not NIfTI; convert it to .nii.gz.")]
    problems = header_problems(image, pixdim)
    if any(severity == "error" for severity, _ in problems):
        return problems
    compressed = kind == "nifti" and path.name.lower().endswith(".gz")
    if deep:
        return problems + _check_voxels(path, image, compressed)
    return problems + _check_length(path, image, kind)


def _misnamed_nifti(path: Path, magic: bytes) -> str | None:
    compressed = path.name.lower().endswith(".gz")
    if not compressed and magic == _GZIP_MAGIC:
        return "is gzip-compressed but named .nii; rename it to .nii.gz."
    if compressed and magic != _GZIP_MAGIC:
        return (
            "is named .nii.gz but is not gzip-compressed, so it is not a NIfTI image (a plain "
            ".nii misnamed, or another file); rename it or export it again."
        )
    return None


def _check_length(path: Path, image, kind: str) -> list[tuple[Severity, str]]:
    """Whether the file holds every voxel its header promises, from its size (or the length
    stored at the end of its gzip stream); a DICOM scan was read whole already."""
    if kind == "dicom":
        return []
    expected = int(getattr(image.dataobj, "offset", 352)) + _data_bytes(image)
    usual = expected + _MGH_FOOTER if kind == "mgh" else expected
    data = Path(image.file_map["image"].filename) if kind == "pair" else path
    if kind == "pair" and data != path:
        reason = unreachable_text(data)
        if reason is not None:
            what = "is missing" if reason == DOES_NOT_EXIST else reason
            return [
                (
                    "error",
                    f"has its voxels in {data.name}, which {what}; a .hdr/.img pair needs both "
                    "files: copy the missing one.",
                )
            ]
    if data.name.lower().endswith((".gz", ".mgz")):
        return _check_gzip_length(data, expected, usual)
    size = data.stat().st_size
    if size >= expected:
        return []
    return [
        ("error", f"is truncated: {size} bytes where its header needs {expected}; copy it again.")
    ]


def _check_gzip_length(path: Path, expected: int, usual: int) -> list[tuple[Severity, str]]:
    """Compare the uncompressed length stored in the gzip trailer with the ``usual`` one (what
    the header needs, and an MGH footer); only on a mismatch (truncation, a multi-member gzip,
    extra MGH tags) decompress the file to be sure it holds the ``expected`` bytes."""
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        stored = int.from_bytes(handle.read(4), "little")
    if stored in (expected % 2**32, usual % 2**32):
        return []
    try:
        length = 0
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                length += len(chunk)
                if length > usual + _CHUNK:  # a stream that inflates past its header: stop
                    return [("error", _inflates(length, expected))]
    except EOFError:
        return [("error", "is truncated (the compressed data ends early); copy it again.")]
    except (OSError, zlib.error) as error:
        return [("error", f"has corrupt compressed data ({exception_text(error)}); copy it again.")]
    if length < expected:
        return [
            (
                "error",
                f"is truncated: {length} bytes of image data where its header needs {expected}; "
                "copy it again.",
            )
        ]
    return []


def _inflates(length: int, expected: int) -> str:
    return (
        f"inflates past what its header declares (more than {length} bytes where the header "
        f"needs {expected}): not a scan as saved; copy it again from the source."
    )


def _check_voxels(path: Path, image, compressed: bool) -> list[tuple[Severity, str]]:
    """Read every voxel (and, for .nii.gz, the whole gzip stream with its checksum)."""
    try:
        if compressed:  # the whole stream, with its checksum, never far past the header's size
            expected = int(getattr(image.dataobj, "offset", 352)) + _data_bytes(image)
            chunks, length = [], 0
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(_CHUNK):
                    chunks.append(chunk)
                    length += len(chunk)
                    if length > expected + _CHUNK:
                        return [("error", _inflates(length, expected))]
            image = type(image).from_bytes(b"".join(chunks))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asanyarray(image.dataobj)
    except EOFError:
        return [("error", "is truncated (the compressed data ends early); copy it again.")]
    except Exception as error:  # zlib, gzip, nibabel and numpy all report damage differently
        return [
            (
                "error",
                "is truncated or corrupt: its voxels cannot be read "
                f"({exception_text(error)}); copy it again.",
            )
        ]
    problems: list[tuple[Severity, str]] = []
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            problems.append(
                (
                    "error",
                    f"has {plural(bad, 'NaN or infinite voxel')} ({100 * bad / data.size:.2g}%); "
                    "replace them (e.g. numpy.nan_to_num) or re-run the preprocessing.",
                )
            )
            data = data[np.isfinite(data)]
    if data.size == 0 or not np.any(data):
        problems.append(("error", "is empty: every voxel is 0; re-run the preprocessing."))
    elif data.min() == data.max():
        problems.append(
            ("error", f"is constant: every voxel is {data.flat[0]:g}; re-run the preprocessing.")
        )
    return problems


def _data_bytes(image) -> int:
    shape = image.header.get_data_shape()
    return int(np.prod(shape, dtype=np.int64)) * image.header.get_data_dtype().itemsize


def _display_base(source: str | os.PathLike) -> Path:
    path = Path(source).expanduser().absolute()
    return path if path.is_dir() else path.parent


def _display(image: str, base: Path) -> str:
    """Show an image path relative to the dataset's folder when it lies inside it."""
    try:
        return str(Path(image).relative_to(base))
    except ValueError:
        return image
