"""The MNI ICBM152 2009 template that nilearn ships in its wheel, loaded once per process.

Shared by the synthetic cohort (anatomy) and `loes.transforms` (the registration target)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import nibabel as nib
import numpy as np

__all__ = ["TEMPLATE_KINDS", "load_template", "template_grid"]

TEMPLATE_KINDS = ("t1", "brain_mask", "gm", "wm")


@functools.lru_cache(maxsize=8)
def _load(kind: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from nilearn import datasets  # imported lazily: nilearn is slow to import

    loaders = {
        "t1": datasets.load_mni152_template,
        "brain_mask": datasets.load_mni152_brain_mask,
        "gm": datasets.load_mni152_gm_template,
        "wm": datasets.load_mni152_wm_template,
    }
    image = loaders[kind](resolution=resolution)
    data = np.asarray(image.get_fdata(dtype=np.float32))
    data.setflags(write=False)  # shared by every caller through the cache
    affine = np.asarray(image.affine, dtype=np.float64)
    affine.setflags(write=False)
    return data, affine


def load_template(kind: str = "t1", resolution: int = 1) -> nib.Nifti1Image:
    """The MNI ICBM152 2009 (nonlinear symmetric) ``kind`` image at ``resolution`` mm, RAS.

    Loaded from nilearn's wheel (no download) and cached per process; the T1 is skull-stripped
    with intensities in [0, 1], the probability maps are in [0, 1].

    Examples::

        >>> load_template("t1", resolution=2).shape
        (99, 117, 95)
    """
    if kind not in TEMPLATE_KINDS:
        raise ValueError(f"unknown template kind {kind!r}; choose one of {TEMPLATE_KINDS}.")
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(
            f"template resolution must be a positive integer in mm, got {resolution!r}."
        )
    data, affine = _load(kind, int(resolution))
    return nib.Nifti1Image(data, affine)


def template_grid(
    pixdim: float | Sequence[float] | None = None, resolution: int = 1
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Affine and shape of the template's field of view sampled at ``pixdim`` mm.

    The grid keeps the template's origin (its first voxel's centre) and covers the same extent;
    ``pixdim=None`` returns the template's own grid at ``resolution``.

    Examples::

        >>> affine, shape = template_grid(2.0)
        >>> shape
        (99, 117, 95)
    """
    image = load_template("t1", resolution)
    affine = np.array(image.affine, dtype=np.float64)
    shape = np.array(image.shape[:3])
    if pixdim is None:
        return affine, tuple(int(s) for s in shape)
    pixdim_ = np.broadcast_to(np.asarray(pixdim, dtype=np.float64), (3,))
    if np.any(pixdim_ <= 0):
        raise ValueError(f"pixdim must be positive, got {pixdim!r}.")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    extent = shape * spacing
    new_shape = np.maximum(np.ceil(extent / pixdim_ - 1e-6), 1).astype(int)
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] / spacing * pixdim_
    return new_affine, tuple(int(s) for s in new_shape)
