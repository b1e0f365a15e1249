"""Synthetic volumes for the transform tests: analytic images sampled on arbitrary grids."""

from __future__ import annotations

from collections.abc import Callable

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from scipy.ndimage import affine_transform

from loes.transforms import load_template

MARKER = np.array([12.0, -20.0, 8.0])  # world (MNI) mm
BOX = np.array([[-30.0, 30.0], [-40.0, 35.0], [-20.0, 28.0]])  # the "brain", world mm


def phantom(world: np.ndarray) -> np.ndarray:
    """A world-aligned box of intensity 100 with a bright Gaussian marker at ``MARKER``."""
    inside = np.all((world >= BOX[:, 0]) & (world <= BOX[:, 1]), axis=-1)
    blob = np.exp(-np.sum((world - MARKER) ** 2, axis=-1) / (2 * 3.0**2))
    return inside * (100.0 + 400.0 * blob)


def marker_voxel(image: torch.Tensor) -> np.ndarray:
    """Sub-voxel centroid of the marker: the voxels well above the box's intensity."""
    x = np.asarray(image[0])
    level = np.median(x[x != 0])
    weight = np.clip(x - level - 0.5 * (x.max() - level), 0, None)
    return np.indices(x.shape).reshape(3, -1) @ weight.ravel() / weight.sum()


def as_metatensor(x, affine=None):
    return MetaTensor(torch.as_tensor(np.asarray(x)), affine=torch.as_tensor(affine))


# the three input types MONAI's tests loop over; a MetaTensor carries the affine
INPUT_TYPES = {
    "numpy": lambda x, affine: np.asarray(x),
    "torch": lambda x, affine: torch.as_tensor(np.asarray(x)),
    "metatensor": as_metatensor,
}


def grid_affine(axcodes: str, voxel: tuple[float, float, float], origin_world, shape) -> np.ndarray:
    """Affine of a grid with voxel axes along ``axcodes`` and its centre at ``origin_world``.

    ``axcodes`` like "RAS", "LPS" or "PIR": the direction each voxel axis increases towards.
    """
    directions = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    for column, (code, size) in enumerate(zip(axcodes, voxel, strict=True)):
        row, sign = directions[code]
        affine[row, column] = sign * size
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    affine[:3, 3] = np.asarray(origin_world, dtype=float) - centre
    return affine


def sample_world(fn: Callable[[np.ndarray], np.ndarray], affine: np.ndarray, shape) -> np.ndarray:
    """Evaluate ``fn(world_xyz[..., 3])`` at every voxel centre of the grid."""
    index = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    return fn(world).astype(np.float32)


def write_nifti(path, data: np.ndarray, affine: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def random_affine(rng: np.random.Generator) -> np.ndarray:
    """Rotation up to 10 degrees per axis, scale 0.9-1.1, translation up to 10 mm (RAS 4x4)."""
    angles = np.deg2rad(rng.uniform(-10, 10, 3))
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = rotation @ r
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(rng.uniform(0.9, 1.1, 3))
    matrix[:3, 3] = rng.uniform(-10, 10, 3)
    return matrix


def template_moved(
    matrix: np.ndarray, affine: np.ndarray, shape, resolution: int = 2
) -> np.ndarray:
    """The template on a scanner grid ``affine``/``shape``, MNI mm ``x`` moved to ``matrix @ x``."""
    template = load_template("t1", resolution)
    native_to_template = np.linalg.inv(template.affine) @ np.linalg.inv(matrix) @ affine
    return affine_transform(
        np.asarray(template.dataobj, dtype=np.float32),
        native_to_template[:3, :3],
        native_to_template[:3, 3],
        output_shape=tuple(shape),
        order=1,
    )


def brain_landmarks(step: int = 40) -> np.ndarray:
    """World (MNI) coordinates of every ``step``-th voxel of the 2 mm brain mask, (N, 4)."""
    mask = load_template("brain_mask", 2)
    points = np.argwhere(np.asarray(mask.dataobj) > 0)[::step]
    return np.c_[points, np.ones(len(points))] @ mask.affine.T
