"""Native-like acquisition: subject geometry, scanner grids, one resampling, bias and noise.

A scan's voxel ``v`` sits at scanner position ``w = A v`` (its affine). The head is the
subject's warped template placed in the scanner by a pose ``S``: ``m_s = S^-1 w`` is the
point in subject space and ``m = m_s + d(m_s)`` the MNI point it shows (``d``: the subject's
smooth deformation). This whole chain is evaluated on a coarse grid of the scan (every 4th
voxel), upsampled linearly (exact for the affine part, smooth ``d``) and used for a single
``map_coordinates`` per field, so no scan is ever resampled twice.

Anatomy keeps its world coordinates: ``S`` is close to the identity (head size, a few
degrees, a few millimetres), so a scan resampled to MNI by its affine alone lands within a
few millimetres of the template.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import asdict, dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from loes.data.synthetic.anatomy import Anatomy

__all__ = [
    "HEAD_BOX",
    "ORIENTATIONS",
    "SITE_PROFILES",
    "Acquisition",
    "SiteProfile",
    "SubjectGeometry",
    "draw_acquisition",
    "draw_subject_geometry",
    "native_grid",
    "nifti_bytes",
    "sample_coordinates",
    "upsample",
]

ORIENTATIONS: dict[str, str] = {
    "RAS": "axial",
    "LPS": "axial",
    "LAS": "axial",
    "ASL": "sagittal",
    "PIR": "sagittal",
    "LSA": "coronal",
    "RIP": "coronal",
}
"""Voxel axis codes (nibabel ``aff2axcodes`` style) -> plane; the third axis is the slice axis."""

_AXES = {
    "R": (1, 0, 0),
    "L": (-1, 0, 0),
    "A": (0, 1, 0),
    "P": (0, -1, 0),
    "S": (0, 0, 1),
    "I": (0, 0, -1),
}
_BRAIN_BOX = np.array([[-73.0, -108.0, -73.0], [73.0, 74.0, 83.0]])  # MNI brain extent, mm
HEAD_BOX = np.array([[-95.0, -122.0, -110.0], [95.0, 112.0, 108.0]])
"""MNI extent (mm) a whole-head scan covers: scalp to scalp, nose to occiput, vertex to the
second cervical vertebra (the usual field of view of a 256 mm head scan)."""
_BRAIN_CENTRE = np.array([0.0, -18.0, 5.0])


@dataclass(frozen=True)
class SiteProfile:
    """A scanner's habits: field strength, noise, bias, intensity scale and preferred grids."""

    field_strength: float
    noise: float  # Rician sigma as a fraction of white-matter intensity
    bias: float  # log-amplitude of the multiplicative bias field
    scale: float  # white-matter intensity in stored units
    gamma: float  # contrast curve applied to template intensities
    thick_slices: float  # probability of a thick-slice (e.g. 1x1x3 mm) acquisition
    orientations: dict[str, float]


SITE_PROFILES: dict[str, SiteProfile] = {
    "site-A": SiteProfile(
        3.0, 0.020, 0.10, 1000.0, 1.00, 0.05, {"ASL": 0.5, "RAS": 0.3, "LPS": 0.2}
    ),
    "site-B": SiteProfile(
        1.5, 0.040, 0.18, 400.0, 1.15, 0.35, {"LPS": 0.5, "LAS": 0.3, "RIP": 0.2}
    ),
    "site-C": SiteProfile(
        3.0, 0.025, 0.12, 2500.0, 0.90, 0.10, {"PIR": 0.4, "LSA": 0.3, "RAS": 0.3}
    ),
    "site-D": SiteProfile(
        1.5, 0.050, 0.22, 700.0, 1.25, 0.30, {"LAS": 0.4, "ASL": 0.3, "LSA": 0.3}
    ),
}


@dataclass(frozen=True)
class SubjectGeometry:
    """Pose ``S`` (subject -> scanner mm) and the coarse deformation field ``d``."""

    pose: np.ndarray  # 4x4
    field: np.ndarray  # (3, a, b, c) displacement in mm on a 10 mm grid
    field_origin: np.ndarray  # mm of field voxel 0
    field_spacing: float


@dataclass(frozen=True)
class Acquisition:
    """One scan's grid and degradations; ``sidecar()`` is what the JSON sidecar records."""

    site: str
    orientation: str
    voxel_size: tuple[float, float, float]
    matrix: tuple[int, int, int]
    affine: np.ndarray
    oblique_degrees: float
    bias_coefficients: np.ndarray  # quadratic polynomial in (x, y, z) / 100 mm
    noise: float
    scale: float
    blur: float  # partial-volume Gaussian sigma, voxels
    gamma: float

    def sidecar(self) -> dict:
        d = asdict(self)
        d["affine"] = np.round(self.affine, 6).tolist()
        d["bias_coefficients"] = np.round(self.bias_coefficients, 6).tolist()
        d["plane"] = ORIENTATIONS[self.orientation]
        d["field_strength"] = SITE_PROFILES[self.site].field_strength
        d["bias_level"] = round(float(np.abs(self.bias_coefficients).sum()), 4)
        d["thick_slice"] = self.voxel_size[2] > 1.6 * max(self.voxel_size[:2])
        for key in ("noise", "scale", "blur", "gamma", "oblique_degrees"):
            d[key] = round(float(d[key]), 4)
        return d


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _about_centre(linear: np.ndarray, shift: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = _BRAIN_CENTRE - linear @ _BRAIN_CENTRE + shift
    return out


def draw_subject_geometry(rng: np.random.Generator) -> SubjectGeometry:
    """Head size and pose plus a smooth nonlinear warp (2-3 mm), shared by all sessions."""
    size = rng.uniform(0.88, 1.0) * rng.uniform(0.97, 1.03, size=3)  # children's heads
    pose = _about_centre(_rotation(rng.normal(0, 4.0, 3)) @ np.diag(size), rng.normal(0, 4.0, 3))
    spacing = 10.0
    origin = np.array([-110.0, -140.0, -100.0])
    shape = (23, 27, 22)
    field = rng.standard_normal((3, *shape)).astype(np.float32)
    field = np.stack([ndimage.gaussian_filter(f, 1.3) for f in field])
    field *= rng.uniform(1.5, 3.0) / max(float(field.std()), 1e-6)
    return SubjectGeometry(pose, field.astype(np.float32), origin, spacing)


def session_pose(geometry: SubjectGeometry, rng: np.random.Generator) -> np.ndarray:
    """The subject's pose with a small session-to-session repositioning."""
    jitter = _about_centre(_rotation(rng.normal(0, 1.0, 3)), rng.normal(0, 1.5, 3))
    return jitter @ geometry.pose


def draw_acquisition(
    site: str,
    pose: np.ndarray,
    resolution: float,
    rng: np.random.Generator,
    whole_head: bool = False,
) -> Acquisition:
    """A native grid covering the brain (or with ``whole_head`` the :data:`HEAD_BOX`):
    orientation, voxel size, matrix, FOV, degradations. Both draw the same numbers from
    ``rng``."""
    profile = SITE_PROFILES[site]
    codes = list(profile.orientations)
    code = str(rng.choice(codes, p=np.array(list(profile.orientations.values()))))
    inplane = resolution * rng.uniform(0.8, 1.3)
    if rng.random() < profile.thick_slices and resolution <= 1.5:
        sizes = (inplane, inplane, resolution * rng.choice([3.0, 3.0, 2.5, 4.0]))
    else:
        sizes = (inplane, inplane, resolution * rng.uniform(0.8, 1.3))
    sizes = tuple(round(float(s), 3) for s in sizes)
    oblique = rng.uniform(2.0, 12.0) if rng.random() < 0.5 else 0.0
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    rot = _axis_angle(axis, oblique)
    direction = rot @ np.array([_AXES[c] for c in code], dtype=float).T  # columns: axis dirs
    box = HEAD_BOX if whole_head else _BRAIN_BOX
    corners = np.array([[x, y, z] for x in box[:, 0] for y in box[:, 1] for z in box[:, 2]])
    world = corners @ pose[:3, :3].T + pose[:3, 3]
    along = world @ direction  # positions along each voxel axis
    lo = along.min(0) - rng.uniform(2.0, 16.0, 3)
    hi = along.max(0) + rng.uniform(2.0, 16.0, 3)
    matrix = tuple(
        int(2 * math.ceil((b - a) / v / 2)) for a, b, v in zip(lo, hi, sizes, strict=True)
    )
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(sizes)
    affine[:3, 3] = direction @ lo
    return Acquisition(
        site=site,
        orientation=code,
        voxel_size=sizes,  # type: ignore[arg-type]
        matrix=matrix,  # type: ignore[arg-type]
        affine=affine,
        oblique_degrees=float(oblique),
        bias_coefficients=rng.normal(0.0, profile.bias / 2.0, 9),
        noise=float(profile.noise * rng.uniform(0.8, 1.25)),
        scale=float(profile.scale * rng.uniform(0.85, 1.15)),
        blur=float(rng.uniform(0.3, 0.7)),
        gamma=profile.gamma,
    )


def _axis_angle(axis: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def native_grid(acq: Acquisition) -> tuple[np.ndarray, tuple[int, int, int], int]:
    """Sampling affine, shape and slice oversampling factor (thick slices are averaged)."""
    factor = max(1, round(acq.voxel_size[2] / max(acq.voxel_size[:2])))
    over = np.eye(4)
    over[2, 2] = 1.0 / factor
    over[2, 3] = -(factor - 1) / (2.0 * factor)  # sub-slices centred on each slice
    shape = (acq.matrix[0], acq.matrix[1], acq.matrix[2] * factor)
    return acq.affine @ over, shape, factor


def upsample(nodes: np.ndarray, shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Separable linear interpolation of values at every ``stride``-th index to ``shape``.

    ``nodes`` is (C, a, b, c); missing trailing nodes are padded with the last one.
    """
    need = [(n - 1) // stride + 2 for n in shape]
    pad = [(0, 0)] + [(0, max(0, m - have)) for m, have in zip(need, nodes.shape[1:], strict=True)]
    out = np.pad(nodes, pad, mode="edge") if any(p[1] for p in pad) else nodes
    for axis in (3, 2, 1):
        n = shape[axis - 1]
        t = np.arange(n)
        k = t // stride
        bshape = [1] * out.ndim
        bshape[axis] = n
        w = ((t % stride) / stride).astype(np.float32).reshape(bshape)
        step = np.diff(out, axis=axis)
        out = out.take(k, axis=axis) + w * step.take(k, axis=axis)
    return out


def sample_coordinates(
    anat: Anatomy,
    geometry: SubjectGeometry,
    pose: np.ndarray,
    grid_affine: np.ndarray,
    shape: tuple[int, int, int],
    bias: np.ndarray,
    stride: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Template voxel coordinates (3, *shape) of every scan voxel, and the bias field."""
    nodes = [np.arange(0, n + stride - 1, stride, dtype=np.float64) for n in shape]
    grid = np.stack(np.meshgrid(*nodes, indexing="ij"), axis=-1)
    world = grid @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    inv = np.linalg.inv(pose)
    subject = world @ inv[:3, :3].T + inv[:3, 3]
    field_idx = np.moveaxis((subject - geometry.field_origin) / geometry.field_spacing, -1, 0)
    disp = np.stack(
        [ndimage.map_coordinates(f, field_idx, order=1, mode="nearest") for f in geometry.field]
    )
    mni = subject + np.moveaxis(disp, 0, -1)
    inv_mni = np.linalg.inv(anat.affine)
    idx = mni @ inv_mni[:3, :3].T + inv_mni[:3, 3]
    p = world / 100.0
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    basis = np.stack([x, y, z, x * y, x * z, y * z, x * x - y * y, z * z, x * x])
    log_bias = np.tensordot(bias, basis, axes=1)
    nodes_all = np.concatenate([np.moveaxis(idx, -1, 0), np.exp(log_bias)[None]]).astype(np.float32)
    full = upsample(nodes_all, shape, stride)
    return full[:3], full[3]


def nifti_bytes(data: np.ndarray, affine: np.ndarray, description: str = "") -> bytes:
    """A gzipped NIfTI-1 file in memory, byte-identical for identical input.

    The gzip header carries no time stamp or file name (``mtime=0``); level 1 keeps
    writing fast.
    """
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = description[:79].encode()
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)
