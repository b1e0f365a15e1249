"""The Loes areas in MNI space, where a radiologist looks for each item's lesions.

The areas are the ones the score sheet names (Loes et al. 1994, AJNR 15:1761-1766): the
parieto-occipital, anterior temporal and frontal white matter, the splenium and the genu of the
corpus callosum, the visual and auditory pathways, the projection fibres, the cerebellum, the
basal ganglia and the (anterior) thalamus. Each is the union of its lesion items' regions in the
synthetic cohort's MNI anatomy (:mod:`loes.data.synthetic.anatomy`: boxes, spheres and capsules
in MNI millimetres on the ICBM152 2009 tissue maps, both sides), so the areas an explanation is
read against are the areas the synthetic lesions are drawn in.

Examples::

    >>> from loes.data.loes_areas import LOES_AREAS, area_labels
    >>> LOES_AREAS[3]
    'corpus_callosum_splenium'
    >>> int(area_labels([[-30.0, -70.0, 20.0]])[0])  # left parieto-occipital white matter
    1
"""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
from scipy import ndimage

from loes.data.loes_items import LESION_ITEMS, lesion_label

__all__ = ["LOES_AREAS", "MNI_OVERLAP", "area_atlas", "area_labels", "area_shares", "mni_overlap"]

MNI_OVERLAP = 0.7
"""The least Dice overlap (:func:`mni_overlap`) of a scan's brain with the template's at which
the scan is taken to lie in MNI space, so that MNI areas can be read off its millimetres."""

LOES_AREAS: tuple[str, ...] = (
    "parieto_occipital",
    "anterior_temporal",
    "frontal",
    "corpus_callosum_splenium",
    "corpus_callosum_genu",
    "visual_pathway",
    "auditory_pathway",
    "projection_fibres",
    "cerebellum",
    "basal_ganglia",
    "anterior_thalamus",
)
"""The Loes areas, in score-sheet order; area ``i`` has label ``i + 1`` in :func:`area_atlas`.
The corpus callosum's splenium and genu are areas of their own, as radiologists read them."""


def _area_of(column: str) -> str:
    """The Loes area of a lesion item column."""
    if column.startswith("corpus_callosum_"):
        return column  # splenium and genu apart
    return next(i.area for i in LESION_ITEMS if i.column == column)


@functools.lru_cache(maxsize=1)
def area_atlas() -> nib.Nifti1Image:
    """The Loes areas as one uint8 label image in MNI ICBM152 2009 space (2 mm, RAS): label
    ``i + 1`` is ``LOES_AREAS[i]`` (both sides), 0 is neither. Built once per process from the
    1 mm anatomy (about 2 s)."""
    from loes.data.synthetic.anatomy import load_anatomy

    anatomy = load_anatomy(1)
    atlas = np.zeros(anatomy.lesion_atlas.shape, np.uint8)
    for item in LESION_ITEMS:
        area = LOES_AREAS.index(_area_of(item.column)) + 1
        for side in ("left", "right"):
            atlas[anatomy.lesion_atlas == lesion_label(item.column, side)] = area
    atlas.setflags(write=False)
    return nib.Nifti1Image(atlas, anatomy.low_affine)


def _sample(image: nib.Nifti1Image, points_mm) -> np.ndarray:
    """``image``'s value at the voxel nearest each (..., 3) point in mm (0 outside it)."""
    points = np.asarray(points_mm, dtype=np.float64)
    voxels = np.rint(nib.affines.apply_affine(np.linalg.inv(image.affine), points)).astype(int)
    data = np.asarray(image.dataobj)
    inside = np.all((voxels >= 0) & (voxels < data.shape), axis=-1)
    values = np.zeros(points.shape[:-1], data.dtype)
    values[inside] = data[tuple(voxels[inside].T)]
    return values


def _on_grid(image: nib.Nifti1Image, shape, affine) -> np.ndarray:
    """``image``'s values on the grid of ``shape`` and ``affine`` (voxel -> mm): the nearest
    voxel's value, 0 outside ``image`` (``scipy.ndimage.affine_transform`` of order 0)."""
    matrix = np.linalg.inv(image.affine) @ np.asarray(affine, dtype=np.float64)
    data = np.asarray(image.dataobj)
    return ndimage.affine_transform(data, matrix, output_shape=tuple(shape), order=0, cval=0)


def area_labels(points_mm) -> np.ndarray:
    """The Loes area label (:data:`LOES_AREAS` index + 1, 0 for none) at each MNI point.

    Args:
        points_mm: (..., 3) MNI coordinates in millimetres (RAS).

    Returns:
        uint8 array of shape ``points_mm.shape[:-1]``; the nearest atlas voxel's label, 0
        outside the atlas's field of view.
    """
    return _sample(area_atlas(), points_mm).astype(np.uint8)


def area_shares(saliency, affine, brain=None) -> dict[str, float]:
    """The share of a map's positive mass (in the brain) in each Loes area.

    Args:
        saliency: (D, H, W) map (negative values count as 0); a brain mask gives the areas'
            shares of the brain's volume, the chance level of a map.
        affine: (4, 4) voxel -> MNI millimetres of the map's grid (valid for scans in MNI
            space, or registered to it: check with :func:`mni_overlap`).
        brain: (D, H, W) bool mask; only the map's mass inside it counts (None: all of it).

    Returns:
        ``{area: share}`` for every :data:`LOES_AREAS` name, plus ``"elsewhere"`` (the rest),
        summing to 1; NaN everywhere for a map without mass.
    """
    values = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    if brain is not None:
        values = np.where(np.asarray(brain) > 0, values, 0.0)
    labels = _on_grid(area_atlas(), values.shape, affine)
    mass = np.bincount(labels.ravel(), weights=values.ravel(), minlength=len(LOES_AREAS) + 1)
    total = mass.sum()
    shares = mass / total if total > 0 else np.full(mass.shape, np.nan)
    return {**dict(zip(LOES_AREAS, shares[1:].tolist(), strict=True)), "elsewhere": shares[0]}


def mni_overlap(brain, affine) -> float:
    """Dice overlap of a brain mask with the MNI ICBM152 2009 brain mask at the same
    millimetres: about 0.9 for a scan in MNI space, much less for one in scanner space.

    Args:
        brain: (D, H, W) bool mask of the scan's brain (or head).
        affine: (4, 4) voxel -> millimetres of its grid.
    """
    from loes.data.template import load_template

    brain = np.asarray(brain) > 0
    template = load_template("brain_mask", resolution=2)
    inside = _on_grid(template, brain.shape, affine) > 0.5
    total = brain.sum() + inside.sum()
    return float(2 * (brain & inside).sum() / total) if total else 0.0
