"""Whole heads: skull, scalp, eyes and neck around the synthetic brain (``--whole-head``).

The head is pydeface's mean head with face (``pydeface/data/mean_reg2mean.nii.gz``, MIT
licence, (c) 2015 the pydeface authors), registered once to the MNI ICBM152 2009
template by ``scripts/make_head_template.py`` and shipped in ``head/`` (1.5 mm, 1.7 MB, with
its ``NOTICE``): nothing is downloaded and pydeface is not needed at run time.

A scan samples ``brain + (1 - m) * head`` (``m``: the MNI brain mask; the brain is already
weighted by it) through the very coordinates the stripped brain is sampled with (pose, warp,
native grid: :func:`~loes.data.synthetic.acquisition.sample_coordinates`), so skull and brain
move together: inside the mask the scan is the stripped cohort's brain (lesions are rendered
into it afterwards, as for stripped scans), outside it the head's own tissue. The head's T1
intensities are mapped to the scan's contrast with two transfer functions, one for fluid (CSF
around the brain and in the spinal canal, vitreous: through the brain's own CSF, grey and white
matter levels of :data:`~loes.data.synthetic.lesions.CONTRASTS`) and one for the other tissue
(muscle and fat, :data:`HEAD_LEVELS`), weighted by the shipped fluid map.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from loes.data.synthetic.anatomy import Anatomy, load_anatomy
from loes.data.synthetic.lesions import CONTRASTS, healthy_base
from loes.errors import LoesError

__all__ = [
    "HEAD_LEVELS",
    "Head",
    "HeadLevels",
    "head_contrast",
    "head_for",
    "load_head",
    "sample_whole_head",
    "whole_head_base",
]


@dataclass(frozen=True)
class HeadLevels:
    """Extracranial tissue of one contrast, in the template units of ``CONTRASTS``.

    ``muscle`` and ``fat`` are the levels the head's T1 intensities ``T1_MUSCLE`` and
    ``T1_FAT`` map to; ``None`` keeps the T1-weighted intensities as they are.
    """

    muscle: float | None
    fat: float | None


T1_FLUID = 0.12  # the head's T1 intensity of fluid starts here (vitreous is about 0.17)
T1_MUSCLE = 0.55  # the head's T1 intensity of muscle and skin (white matter 0.87)
T1_FAT = 1.05  # of scalp, orbital and marrow fat
HEAD_LEVELS: dict[str, HeadLevels] = {
    "t1w": HeadLevels(None, None),
    # fast spin echo T2: fat bright, muscle darker than white matter (0.36)
    "t2w": HeadLevels(muscle=0.22, fat=0.80),
    # FLAIR: fat bright, muscle dark, fluid suppressed (through CONTRASTS["flair"].csf)
    "flair": HeadLevels(muscle=0.30, fat=0.75),
}


@dataclass(frozen=True)
class Head:
    """The head on a grid with the anatomy's axes and spacing, shifted by whole voxels.

    An anatomy voxel index ``v`` is head voxel ``v + offset``.
    """

    affine: np.ndarray  # head voxel -> MNI mm
    offset: np.ndarray  # (3,) float32, anatomy index -> head index
    t1: np.ndarray  # T1-weighted intensity, MNI white matter 0.87, 0 outside the head
    fluid: np.ndarray  # fraction of fluid, 0-1
    brain: np.ndarray  # the anatomy's brain mask on this grid (0-1)


def _embed(volume: np.ndarray, start: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``volume`` placed at voxel ``start`` of a zero array of ``shape`` (cut to fit)."""
    out = np.zeros(shape, np.float32)
    into = tuple(
        slice(max(0, o), min(n, o + m)) for o, n, m in zip(start, shape, volume.shape, strict=True)
    )
    out[into] = volume[
        tuple(slice(i.start - o, i.stop - o) for i, o in zip(into, start, strict=True))
    ]
    return out


def _shipped(name: str) -> nib.Nifti1Image:
    resource = importlib.resources.files("loes.data.synthetic") / "head" / f"{name}.nii.gz"
    try:
        with importlib.resources.as_file(resource) as path:
            image = nib.load(path)
            image = nib.Nifti1Image(image.get_fdata(dtype=np.float32), image.affine)
    except (OSError, nib.filebasedimages.ImageFileError) as error:
        raise LoesError(
            f"the whole-head template {resource} cannot be read ({error}); reinstall loes, or "
            "rebuild it with `python scripts/make_head_template.py`."
        ) from None
    return image


@functools.lru_cache(maxsize=2)
def load_head(resolution: int = 1) -> Head:
    """The shipped head resampled onto the ``resolution`` mm anatomy's grid, extended to the
    head (cached per process).

    Raises:
        LoesError: when the shipped template is missing or unreadable.
    """
    anat: Anatomy = load_anatomy(resolution)
    t1, fluid = _shipped("head_t1"), _shipped("head_fluid")
    spacing = float(np.linalg.norm(anat.affine[:3, 0]))
    shipped = np.linalg.norm(t1.affine[:3, :3], axis=0)
    lo = t1.affine[:3, 3]
    hi = lo + t1.affine[:3, :3] @ (np.array(t1.shape) - 1)
    origin = anat.affine[:3, 3]
    first = np.ceil((lo - origin) / spacing - 1e-6)  # anatomy voxels, may be negative
    last = np.floor((hi - origin) / spacing + 1e-6)
    affine = anat.affine.copy()
    affine[:3, 3] = origin + first * spacing
    shape = tuple(int(n) for n in last - first + 1)
    to_shipped = np.linalg.inv(t1.affine) @ affine
    sigma = np.sqrt(np.maximum((spacing / shipped) ** 2 - 1.0, 0.0)) / 2.0  # anti-aliasing

    def resample(volume: np.ndarray) -> np.ndarray:
        if sigma.any():
            volume = ndimage.gaussian_filter(volume, sigma)
        out = ndimage.affine_transform(
            volume, to_shipped, output_shape=shape, order=1, mode="nearest"
        )
        return np.clip(out, 0.0, None).astype(np.float32)

    return Head(
        affine=affine,
        offset=(-first).astype(np.float32),
        t1=resample(np.asarray(t1.dataobj)),
        fluid=np.clip(resample(np.asarray(fluid.dataobj)), 0.0, 1.0),
        brain=_embed(anat.brain, (-first).astype(int), shape),
    )


def head_for(anat: Anatomy) -> Head:
    """The head on ``anat``'s grid (:func:`load_head` at the anatomy's resolution)."""
    return load_head(anat.resolution)


def head_contrast(contrast: str, gamma: float, resolution: int) -> np.ndarray:
    """The head in ``contrast`` through a site's contrast curve ``x ** gamma``, head grid.

    Fluid follows the brain's own levels (T1 intensities from ``T1_FLUID`` to CSF's map to the
    contrast's CSF, grey and white matter to its grey and white matter; darker ones fade to 0
    as bone and air), other tissue :data:`HEAD_LEVELS`; T1w keeps the head's intensities.
    """
    head = load_head(resolution)
    levels = HEAD_LEVELS[contrast]
    if levels.muscle is None or levels.fat is None:
        out = head.t1
    else:
        t1, to = CONTRASTS["t1w"], CONTRASTS[contrast]
        fluid = np.interp(
            head.t1,
            [0.0, T1_FLUID, t1.csf, t1.gm, t1.wm],
            [0.0, to.csf, to.csf, to.gm, to.wm],
        )
        tissue = np.interp(head.t1, [0.0, T1_MUSCLE, T1_FAT], [0.0, levels.muscle, levels.fat])
        out = head.fluid * fluid + (1.0 - head.fluid) * tissue
    out = np.asarray(out, np.float32)
    return np.power(out, gamma, dtype=np.float32) if gamma != 1.0 else out


@functools.lru_cache(maxsize=8)
def whole_head_base(contrast: str, gamma: float, resolution: int) -> np.ndarray:
    """``brain + (1 - m) * head`` on the head grid: the healthy brain of
    :func:`~loes.data.synthetic.lesions.healthy_base` (0 outside the brain, weighted by ``m``
    at its edge) in the head's :func:`head_contrast` (cached)."""
    head = load_head(resolution)
    base = healthy_base(contrast, gamma, load_anatomy(resolution))
    brain = _embed(base, head.offset.astype(int), head.t1.shape)
    brain += (1.0 - head.brain) * head_contrast(contrast, gamma, resolution)
    return brain


def sample_whole_head(
    coords: np.ndarray, anat: Anatomy, contrast: str, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """The whole head and the brain mask at ``coords`` (linear interpolation).

    Args:
        coords: (3, X, Y, Z) anatomy voxel indices of the scan's voxels (not modified).
        anat: the anatomy the scan is drawn from.
        contrast, gamma: the scan's contrast and its site's contrast curve.

    Returns:
        (image, m): (X, Y, Z) float32 intensities in template units and the MNI brain mask
        ``m`` (0-1) at each voxel.
    """
    resolution = anat.resolution
    head = load_head(resolution)
    shifted = coords + head.offset.reshape(3, 1, 1, 1)
    # "nearest": the neck continues below the template's last plane; the grid's sides are air
    image, weight = (
        ndimage.map_coordinates(
            volume, shifted, order=1, output=np.float32, mode="nearest", prefilter=False
        )
        for volume in (whole_head_base(contrast, float(gamma), resolution), head.brain)
    )
    return image, weight
