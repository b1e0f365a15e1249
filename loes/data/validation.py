"""Check a dataset before any training: the table, then every image, every problem at once.

Header checks read only the NIfTI header (and, for ``.nii.gz``, the 4-byte length stored at
the end of the gzip stream), so checking hundreds of scans takes seconds. ``deep=True`` reads
every voxel: NaN/inf, empty or constant volumes, corrupt compressed data.
"""

from __future__ import annotations

import gzip
import math
import os
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np

from loes.data.problems import Problem, Severity, ValidationReport, plural
from loes.data.readers import read_table
from loes.data.readers.files import os_error_text, placeholder_text

__all__ = ["DEFAULT_PIXDIM", "MAX_VOXEL_MM", "MIN_VOXEL_MM", "check_image", "validate_dataset"]

#: voxel sizes outside this range (mm) mean a broken header or wrong units
MIN_VOXEL_MM, MAX_VOXEL_MM = 0.2, 10.0
#: fewer voxels than this along an axis is not a 3D volume; more is not an MRI we can train on
_MIN_AXIS, _MAX_AXIS = 4, 2048
#: a head is about 140-200 mm across; a field of view (mm) outside this range cannot be one
_MIN_FOV_MM, _MAX_FOV_MM = 30.0, 500.0
#: voxel size (mm) scans are resampled to, the default of ``loes.transforms.preprocessing``
DEFAULT_PIXDIM = (2.0, 2.0, 2.0)
#: a qform and an sform further apart than this (mm) anywhere in the image disagree
_AFFINES_AGREE_MM = 1.0
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22


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
        source: a manifest, the lab's CSV or a BIDS folder (see ``load_dataset``).
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
    reading = read_table(source, format, images_dir, include_gd, suffix)
    report = ValidationReport(str(source), reading.format, list(reading.problems), deep=deep)
    if reading.table is None:
        return report
    # each image once, at the first row naming it
    first_where: dict[str, str] = {}
    for image, where in zip(reading.table["image"], reading.where, strict=True):
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
    report.table = reading.table
    return report


def check_image(
    path: str | os.PathLike, deep: bool = False, pixdim: float | Sequence[float] = DEFAULT_PIXDIM
) -> list[tuple[Severity, str]]:
    """Problems of one image file as ``(severity, message)``; empty when it looks fine.

    The geometry checked is nibabel's ``image.affine`` (the sform when ``sform_code > 0``, else
    the qform), the affine ``loes.transforms.preprocessing`` uses; ``pixdim`` (mm) is the voxel
    size the scan will be resampled to (see :func:`validate_dataset`).
    """
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return [("error", "is a folder, not an image file; point to the .nii.gz file inside.")]
    if not name.endswith((".nii", ".nii.gz")):
        return [
            (
                "error",
                "is not a NIfTI file (.nii or .nii.gz); convert it, e.g. with dcm2niix "
                "(DICOM) or nibabel/SimpleITK (other formats).",
            )
        ]
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
    magic = head[:2]
    compressed = name.endswith(".gz")
    if not compressed and magic == _GZIP_MAGIC:
        return [("error", "is gzip-compressed but named .nii; rename it to .nii.gz.")]
    if compressed and magic != _GZIP_MAGIC:
        return [
            (
                "error",
                "is named .nii.gz but is not gzip-compressed, so it is not a NIfTI image (a "
                "plain .nii misnamed, or another file); rename it or export it again.",
            )
        ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = nib.load(path)
    except Exception as error:  # nibabel raises many types for broken files; report them all
        return [
            (
                "error",
                f"is not a readable NIfTI image ({_reason(error)}); export it again or convert "
                "it with dcm2niix/nibabel.",
            )
        ]
    if not isinstance(image, nib.Nifti1Pair):
        return [("error", f"is a {type(image).__name__}, not NIfTI; convert it to .nii.gz.")]
    problems = _check_header(image, pixdim)
    if any(severity == "error" for severity, _ in problems):
        return problems
    expected = int(getattr(image.dataobj, "offset", 352)) + _data_bytes(image)
    if deep:
        return problems + _check_voxels(path, image, compressed)
    if compressed:
        problems += _check_gzip_length(path, expected)
    elif size < expected:
        problems.append(
            (
                "error",
                f"is truncated: {size} bytes where its header needs {expected}; copy it again.",
            )
        )
    return problems


def _check_header(
    image: nib.Nifti1Pair, resample_mm: float | Sequence[float] = DEFAULT_PIXDIM
) -> list[tuple[Severity, str]]:
    header = image.header
    shape = tuple(int(n) for n in header.get_data_shape())
    dtype = header.get_data_dtype()
    problems: list[tuple[Severity, str]] = []
    if len(shape) < 3:
        problems.append(
            ("error", f"has {plural(len(shape), 'dimension')} {shape}; a 3D volume is needed.")
        )
    elif len(shape) > 3:
        problems.append(
            (
                "error",
                f"is {len(shape)}D {shape}; keep one 3D volume (e.g. `fslroi in out 0 1`, or "
                "nibabel's `image.slicer[..., 0]`; drop a trailing axis of size 1 with "
                "`nibabel.funcs.squeeze_image`).",
            )
        )
    if dtype.fields is not None or dtype.kind == "c":
        problems.append(
            (
                "error",
                f"has multi-component voxels ({dtype}); convert it to one grey value per voxel.",
            )
        )
    if problems:
        return problems
    # raw pixdim (nibabel's get_zooms hides zeros); the sizes used downstream come from the affine
    pixdim = [float(z) for z in header["pixdim"][1:4]]
    affine = image.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        problems.append(
            ("error", "has a singular or non-finite affine (qform/sform); fix the orientation.")
        )
        return problems
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        problems.append(
            (
                "warning",
                "has neither a qform nor an sform (both codes 0), so its orientation is unknown "
                "and readers fall back to voxel sizes alone (left and right may be swapped); "
                "convert it again from DICOM with dcm2niix.",
            )
        )
    disagreement = _qform_sform_disagreement(image, shape)
    if disagreement:
        problems.append(("warning", disagreement))
    zooms = [float(z) for z in nib.affines.voxel_sizes(affine)]
    if not all(math.isfinite(z) and z > 0 for z in pixdim):
        problems.append(
            ("error", f"has invalid voxel sizes {_mm(pixdim)} (pixdim); fix the header.")
        )
    elif not all(MIN_VOXEL_MM <= z <= MAX_VOXEL_MM for z in zooms):
        problems.append(
            (
                "error",
                f"has implausible voxel sizes {_mm(zooms)} (expected {MIN_VOXEL_MM}-"
                f"{MAX_VOXEL_MM} mm); check the affine, pixdim and the units (xyzt_units).",
            )
        )
    elif not disagreement and not np.allclose(pixdim, zooms, rtol=0.01):
        problems.append(
            (
                "warning",
                f"has voxel sizes {_mm(pixdim)} in pixdim but {_mm(zooms)} in its sform, "
                "which loes uses (as nibabel does); tools that read pixdim will disagree: "
                "save it again with a consistent header.",
            )
        )
    if not all(_MIN_AXIS <= n <= _MAX_AXIS for n in shape):
        problems.append(
            (
                "error",
                f"has an implausible shape {shape} (each axis {_MIN_AXIS}-{_MAX_AXIS} voxels); "
                "is it a full 3D brain volume?",
            )
        )
    elif not any(severity == "error" for severity, _ in problems):
        fov = [n * z for n, z in zip(shape, zooms, strict=True)]
        if not all(_MIN_FOV_MM <= f <= _MAX_FOV_MM for f in fov):
            problems.append(("error", _impossible_fov(affine, shape, zooms, resample_mm)))
    return problems


def _qform_sform_disagreement(image: nib.Nifti1Pair, shape: tuple[int, ...]) -> str | None:
    """A warning when both a qform and an sform are set and place the image differently."""
    header = image.header
    if int(header["qform_code"]) <= 0 or int(header["sform_code"]) <= 0:
        return None
    sform = image.get_sform()
    used = f"loes uses the sform (sform_code {int(header['sform_code'])} > 0), as nibabel does"
    try:
        qform = image.get_qform()
    except ValueError as error:  # an invalid quaternion
        return f"has an invalid qform ({_reason(error)}); {used}: save it again with both set."
    corners = np.array([[*c, 1.0] for c in product(*[(0, n - 1) for n in shape])])
    apart = float(np.max(np.linalg.norm(corners @ (sform - qform).T[:, :3], axis=1)))
    if not apart > _AFFINES_AGREE_MM:  # NaN included: the affine check reports it
        return None
    codes = {name: "".join(nib.aff2axcodes(a)) for name, a in (("q", qform), ("s", sform))}
    axes = sform[:3, :3] / np.linalg.norm(sform[:3, :3], axis=0)
    sheared = np.abs(axes.T @ axes - np.eye(3)).max() > 1e-3
    why = (
        " (the sform is sheared, e.g. by a gantry tilt, and a qform can only hold a rotation)"
        if sheared
        else ""
    )
    return (
        f"has a qform ({codes['q']}) and an sform ({codes['s']}) that place it up to "
        f"{apart:.0f} mm apart{why}; {used}, other tools may use the qform: check which is "
        "right and save the image with both set to it (nibabel: "
        "`image.set_qform(image.get_sform())`)."
    )


def _impossible_fov(
    affine: np.ndarray,
    shape: tuple[int, ...],
    zooms: list[float],
    resample_mm: float | Sequence[float],
) -> str:
    """The error of a field of view no head fits, with the size it would be resampled to."""
    fov = [n * z for n, z in zip(shape, zooms, strict=True)]
    target = [float(v) for v in np.broadcast_to(np.asarray(resample_mm, dtype=float), (3,))]
    # the grid MONAI's Orientationd("RAS") and Spacingd make, about: each voxel axis along
    # the world axis it is closest to
    world_axis = nib.orientations.io_orientation(affine)[:, 0].astype(int)
    resampled = [0, 0, 0]
    for extent, axis in zip(fov, world_axis, strict=True):
        resampled[axis] = max(1, round(extent / target[axis]))
    gigabytes = 4 * math.prod(resampled) / 1e9  # float32
    memory = ""
    if gigabytes >= 0.1:
        memory = f" ({gigabytes:.{0 if gigabytes >= 10 else 1}f} GB as float32)"
    extent = " x ".join(f"{f:.4g}" for f in fov)
    return (
        f"covers {extent} mm ({' x '.join(map(str, shape))} voxels of {_mm(zooms)}), which no "
        f"head fits (each axis must be {_MIN_FOV_MM:g}-{_MAX_FOV_MM:g} mm; a head is about "
        f"140-200 mm across); resampled to {_mm(target)} voxels it would become "
        f"{' x '.join(map(str, resampled))} voxels{memory}. Check the voxel sizes (pixdim, the "
        "affine and their units, xyzt_units) and that it is one whole-head volume."
    )


def _check_gzip_length(path: Path, expected: int) -> list[tuple[Severity, str]]:
    """Compare the uncompressed length stored in the gzip trailer with what the header needs;
    only on a mismatch (truncation, or a multi-member gzip) decompress the file to be sure."""
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        stored = int.from_bytes(handle.read(4), "little")
    if stored == expected % 2**32:
        return []
    try:
        length = 0
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                length += len(chunk)
    except EOFError:
        return [("error", "is truncated (the compressed data ends early); copy it again.")]
    except (OSError, zlib.error) as error:
        return [("error", f"has corrupt compressed data ({_reason(error)}); copy it again.")]
    if length < expected:
        return [
            (
                "error",
                f"is truncated: {length} bytes of image data where its header needs {expected}; "
                "copy it again.",
            )
        ]
    return []


def _check_voxels(
    path: Path, image: nib.Nifti1Pair, compressed: bool
) -> list[tuple[Severity, str]]:
    """Read every voxel (and, for .nii.gz, the whole gzip stream with its checksum)."""
    try:
        if compressed:
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
            image = type(image).from_bytes(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asanyarray(image.dataobj)
    except EOFError:
        return [("error", "is truncated (the compressed data ends early); copy it again.")]
    except Exception as error:  # zlib, gzip, nibabel and numpy all report damage differently
        return [
            (
                "error",
                f"is truncated or corrupt: its voxels cannot be read ({_reason(error)}); copy it "
                "again.",
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


def _data_bytes(image: nib.Nifti1Pair) -> int:
    shape = image.header.get_data_shape()
    return int(np.prod(shape, dtype=np.int64)) * image.header.get_data_dtype().itemsize


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _mm(values: list[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values) + " mm"


def _display_base(source: str | os.PathLike) -> Path:
    path = Path(source).expanduser().absolute()
    return path if path.is_dir() else path.parent


def _display(image: str, base: Path) -> str:
    """Show an image path relative to the dataset's folder when it lies inside it."""
    try:
        return str(Path(image).relative_to(base))
    except ValueError:
        return image
