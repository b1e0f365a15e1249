"""Private bridge between MONAI/nibabel arrays (RAS world) and SimpleITK images (LPS world)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import SimpleITK as sitk
import torch

__all__: list[str] = []

# nibabel/MONAI world coordinates are RAS+, ITK physical space is LPS+: flip x and y.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def as_numpy_affine(affine: torch.Tensor | np.ndarray | None) -> np.ndarray:
    if affine is None:
        return np.eye(4)
    if isinstance(affine, torch.Tensor):
        affine = affine.detach().cpu().numpy()
    return np.asarray(affine, dtype=np.float64)


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A 3D array ``array[i, j, k]`` with RAS ``affine`` as a SimpleITK image in LPS space.

    SimpleITK reads numpy arrays as ``[z, y, x]``, so its index ``(x, y, z)`` is ``(k, j, i)``:
    the affine's columns are permuted instead of copying the data into Fortran order.
    """
    image = sitk.GetImageFromArray(np.asarray(array))
    lps = RAS_TO_LPS @ affine
    columns = lps[:3, [2, 1, 0]]
    spacing = np.linalg.norm(columns, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (columns / spacing).ravel()])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    return image


def from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxel array of an image made by :func:`to_sitk`, in the original ``[i, j, k]`` order."""
    return sitk.GetArrayFromImage(image)


def itk_affine_to_ras(transform: sitk.Transform) -> np.ndarray:
    """4x4 RAS matrix of an ITK matrix+offset transform (maps fixed points to moving points)."""
    matrix = np.array(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    translation = np.array(transform.GetTranslation(), dtype=np.float64)
    center = np.array(transform.GetCenter(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = translation + center - matrix @ center
    return RAS_TO_LPS @ lps @ RAS_TO_LPS


def ras_to_itk_affine(matrix: np.ndarray) -> sitk.AffineTransform:
    """Inverse of :func:`itk_affine_to_ras`: an ITK affine transform from a 4x4 RAS matrix."""
    lps = RAS_TO_LPS @ np.asarray(matrix, dtype=np.float64) @ RAS_TO_LPS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    return transform


@contextlib.contextmanager
def single_threaded(enabled: bool = True) -> Iterator[None]:
    """Run SimpleITK filters on one thread: threaded sums make registration non-reproducible."""
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    if enabled:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
