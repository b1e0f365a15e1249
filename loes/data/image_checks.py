"""Header checks of one scan, whatever its format: is it one 3D volume of grey values, with a
usable affine, plausible voxel sizes and a field of view a head fits, and is its orientation
known? Only the header is read (a DICOM series is read whole by :mod:`loes.data.readers.dicom`).

The geometry checked is the scan's RAS affine, nibabel's ``image.affine`` (for NIfTI the sform
when ``sform_code > 0``, else the qform), the one ``loes.transforms.preprocessing`` uses.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np

from loes.data.problems import Severity, plural
from loes.data.readers.files import exception_text
from loes.data.readers.scans import squeezed_shape

__all__ = [
    "DEFAULT_PIXDIM",
    "MAX_VOXEL_MM",
    "MIN_VOXEL_MM",
    "available_memory",
    "header_problems",
]

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


def header_problems(
    image: nib.spatialimages.SpatialImage, resample_mm: float | Sequence[float] = DEFAULT_PIXDIM
) -> list[tuple[Severity, str]]:
    """Problems of a scan's header as ``(severity, message)``, each message to follow the
    scan's name; empty when it looks fine.

    Args:
        image: the scan as :func:`loes.data.readers.scans.open_scan` opens it (a NIfTI image or
            pair, an ANALYZE 7.5 pair, an MGH image, a DICOM scan as an in-memory NIfTI).
        resample_mm: the voxel size (mm; one, or x, y, z) the scan will be resampled to, to say
            what an impossible field of view would become.

    Errors: not one 3D volume (a (X, Y, Z, 1) volume is one), multi-component voxels, a
    singular affine, implausible voxel sizes or shape, voxels that need more memory than the
    machine has free (:func:`available_memory`), a field of view no head fits. Warnings:
    an orientation that is unknown (a NIfTI with both form codes 0, an ANALYZE 7.5 pair) or
    ambiguous (qform and sform apart), a NIfTI ``pixdim`` that disagrees with its affine.
    """
    header = image.header
    stored = tuple(int(n) for n in header.get_data_shape())
    shape = squeezed_shape(stored)
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
                f"is {len(shape)}D {stored}; keep one 3D volume (e.g. `fslroi in out 0 1`, or "
                "nibabel's `image.slicer[..., 0]`).",
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
    affine = image.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        problems.append(
            ("error", "has a singular or non-finite affine (qform/sform); fix the orientation.")
        )
        return problems
    nifti = isinstance(image, nib.Nifti1Pair)  # a NIfTI image or pair
    disagreement = _qform_sform_disagreement(image, shape) if nifti else None
    problems += _unknown_orientation(image)
    if disagreement:
        problems.append(("warning", disagreement))
    zooms = [float(z) for z in nib.affines.voxel_sizes(affine)]
    # raw pixdim (nibabel's get_zooms hides zeros); the sizes used downstream come from the affine
    if isinstance(image, nib.AnalyzeImage):
        pixdim = [float(z) for z in header["pixdim"][1:4]]
    else:
        pixdim = [float(z) for z in header.get_zooms()[:3]]
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
    elif nifti and not disagreement and not np.allclose(pixdim, zooms, rtol=0.01):
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
    elif too_large := _too_large(shape, dtype):
        problems.append(("error", too_large))
    elif not any(severity == "error" for severity, _ in problems):
        fov = [n * z for n, z in zip(shape, zooms, strict=True)]
        if not all(_MIN_FOV_MM <= f <= _MAX_FOV_MM for f in fov):
            problems.append(("error", _impossible_fov(affine, shape, zooms, resample_mm)))
    return problems


def available_memory() -> int:
    """The bytes of memory this machine can still give (``MemAvailable`` of ``/proc/meminfo``,
    else the free physical pages)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _too_large(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why a scan cannot be read here: its voxels as stored and as float32 (what
    preprocessing works in) need more memory than the machine has free; None otherwise."""
    voxels = math.prod(shape)
    needed = voxels * (dtype.itemsize + 4)
    free = available_memory()
    if needed <= free:
        return None
    return (
        f"asks for more memory than this machine has: {'x'.join(map(str, shape))} voxels of "
        f"{dtype} need {needed / 1e9:.1f} GB to read as float32, and {free / 1e9:.1f} GB are "
        "free; a brain MRI needs a few hundred MB at most: check the header's dimensions."
    )


def _unknown_orientation(image: nib.spatialimages.SpatialImage) -> list[tuple[Severity, str]]:
    """A warning when the header does not say how the voxels lie in the head."""
    header = image.header
    if isinstance(image, nib.Nifti1Pair):
        if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
            return [
                (
                    "warning",
                    "has neither a qform nor an sform (both codes 0), so its orientation is "
                    "unknown and readers fall back to voxel sizes alone (left and right may be "
                    "swapped); convert it again from DICOM with dcm2niix.",
                )
            ]
        return []
    if isinstance(image, nib.AnalyzeImage) and not _spm_mat(image):
        codes = "".join(nib.aff2axcodes(image.affine))
        return [
            (
                "warning",
                f"is an ANALYZE 7.5 pair, which holds no orientation: loes reads it as nibabel "
                f"does, {codes} (the first axis taken as right to left, the radiological "
                "convention), which may swap left and right; convert it again from DICOM with "
                "dcm2niix, or save it as NIfTI once its orientation is checked.",
            )
        ]
    return []


def _spm_mat(image: nib.AnalyzeImage) -> bool:
    """Whether SPM's ``.mat`` file beside an ANALYZE pair gives it an orientation (nibabel's
    SPM99/SPM2 readers use it)."""
    mat = image.file_map.get("mat")
    return mat is not None and mat.filename is not None and Path(mat.filename).is_file()


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
        return (
            f"has an invalid qform ({exception_text(error)}); {used}: save it again with both set."
        )
    corners = np.array([[*c, 1.0] for c in product(*[(0, n - 1) for n in shape])])
    apart = float(np.max(np.linalg.norm(corners @ (sform - qform).T[:, :3], axis=1)))
    if not apart > _AFFINES_AGREE_MM:  # NaN included: the affine check reports it
        return None
    codes = {  # an axis no letter fits (a degenerate form) is "?"
        name: "".join(c or "?" for c in nib.aff2axcodes(a))
        for name, a in (("q", qform), ("s", sform))
    }
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


def _mm(values: list[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values) + " mm"
