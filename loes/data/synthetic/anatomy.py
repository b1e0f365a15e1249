"""MNI anatomy of the synthetic cohort: template, tissue maps and the Loes areas.

Everything here lives in MNI ICBM152 2009 space as nilearn ships it (197x233x189 at 1 mm,
origin (-98, -134, -72)). Intensities stay at the anatomy's resolution (1 mm, or 2 mm for
coarse scans); the Loes areas, distance maps and the lesion atlas live on a grid twice as
coarse (each field voxel is the mean of a 2x2x2 block of intensity voxels), where
per-session lesion fields are cheap to compute. Sizes are given in millimetres, so both
resolutions draw the same anatomy.

The areas are boxes, spheres and capsules in MNI millimetres intersected with the tissue
maps; ``|x|`` is the distance from the midline and each area is split into left (x < 0)
and right (x > 0). The coordinates are written next to each area in :func:`_lesion_regions`
and follow standard atlases (LGN at about (+-22, -25, -6), MGN (+-14, -28, 0), splenium at
y -46..-24, genu y 10..40; Mai, Atlas of the Human Brain; JHU white-matter atlas).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from loes.data.loes_items import ATROPHY_ITEMS, LESION_ITEMS, lesion_label, lesion_label_names
from loes.data.template import TEMPLATE_KINDS, load_template

__all__ = ["ANATOMY_RESOLUTIONS", "Anatomy", "anatomy_for", "load_anatomy"]

SIDES = ("left", "right")
ANATOMY_RESOLUTIONS = (1, 2)
"""Intensity resolutions (mm) the anatomy is built at; its fields are twice as coarse."""
_HALVE = np.array([[2, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 2, 0.5], [0, 0, 0, 1]])
"""Voxel -> voxel of the grid made of 2x2x2 block means."""


@dataclass
class Anatomy:
    """Template intensities and, at half their resolution, the Loes areas and distance maps.

    ``lesion_atlas`` holds, for every lesion item's side, its label from
    :func:`loes.data.loes_items.lesion_label` (0 elsewhere); the areas do not overlap, so a
    lesion voxel belongs to exactly one item and side.
    """

    affine: np.ndarray  # intensity voxel -> MNI mm
    t1: np.ndarray  # skull-stripped T1 template, 0-1
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    low_affine: np.ndarray  # field voxel -> MNI mm
    lesion_atlas: np.ndarray  # uint8 labels, field grid
    atrophy_regions: dict[tuple[str, str], np.ndarray]  # (column, side) -> bool, field grid
    dist_csf: np.ndarray  # mm from CSF or outside the brain, field grid
    dist_ventricle: np.ndarray  # mm from the lateral/third ventricles, field grid
    tissue_low: np.ndarray  # gm + wm fraction, field grid
    brain: np.ndarray  # MNI brain mask (0-1, a fraction at 2 mm), intensity grid

    @property
    def low_shape(self) -> tuple[int, int, int]:
        return self.lesion_atlas.shape  # type: ignore[return-value]

    @property
    def resolution(self) -> int:
        """Voxel size of the intensity grid in mm (one of :data:`ANATOMY_RESOLUTIONS`)."""
        return round(float(np.linalg.norm(self.affine[:3, 0])))

    @property
    def field_mm(self) -> float:
        """Voxel size of the field grid (2 mm for the 1 mm anatomy)."""
        return float(np.linalg.norm(self.low_affine[:3, 0]))


def _block_mean(volume: np.ndarray) -> np.ndarray:
    """2x2x2 block means (the last odd plane is padded by edge values)."""
    pad = [(0, s % 2) for s in volume.shape]
    v = np.pad(volume, pad, mode="edge").astype(np.float32)
    a, b, c = (s // 2 for s in v.shape)
    return v.reshape(a, 2, b, 2, c, 2).mean(axis=(1, 3, 5))


def _capsule(points: np.ndarray, p0, p1, radius: float) -> np.ndarray:
    """Voxels within ``radius`` mm of the segment p0-p1 (points: (..., 3) in mm)."""
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    d = p1 - p0
    t = np.clip(((points - p0) @ d) / float(d @ d), 0.0, 1.0)
    closest = p0 + t[..., None] * d
    return np.linalg.norm(points - closest, axis=-1) <= radius


def _lesion_regions(
    xyz: np.ndarray, gm: np.ndarray, wm: np.ndarray, tissue: np.ndarray, dists: dict
) -> list[tuple[str, np.ndarray]]:
    """(item column, mask using |x|) in priority order: the first area claiming a voxel wins."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    ax = np.abs(x)
    pts = np.stack([ax, y, z], axis=-1)  # mirror so one definition serves both sides
    white = wm > 0.5
    tis = tissue > 0.5
    vent, dgm, depth = dists["ventricle"], dists["gm"], dists["depth"]

    def box(xr, yr, zr):
        return (
            (ax >= xr[0])
            & (ax <= xr[1])
            & (y >= yr[0])
            & (y <= yr[1])
            & (z >= zr[0])
            & (z <= zr[1])
        )

    def sphere(c, r):
        return np.linalg.norm(pts - np.asarray(c, np.float32), axis=-1) <= r

    thalamus = (ax < 20) & (y < -4) & (z < 16)
    regions = [
        # corpus callosum: midline white matter behind / in front of the body
        ("corpus_callosum_splenium", white & box((0, 14), (-46, -24), (0, 28))),
        ("corpus_callosum_genu", white & box((0, 14), (10, 40), (-10, 26))),
        # thalamic relay nuclei: spheres around atlas centres
        ("visual_pathway_lateral_geniculate", tis & sphere((23, -24, -7), 5.5)),
        ("auditory_pathway_medial_geniculate", tis & sphere((14, -28, 0), 5.0)),
        # brainstem tracts: capsules between atlas points
        (
            "auditory_pathway_brachium_inferior_colliculus",
            tis & _capsule(pts, (11, -30, -4), (6, -36, -9), 3.5),
        ),
        (
            "auditory_pathway_lateral_lemniscus",
            tis & _capsule(pts, (9, -36, -14), (10, -34, -26), 3.5),
        ),
        ("auditory_pathway_pons", tis & box((0, 10), (-42, -28), (-40, -30))),
        ("projection_fibres_brainstem", tis & _capsule(pts, (13, -18, -10), (8, -26, -30), 4.0)),
        ("visual_pathway_optic_tract", tis & _capsule(pts, (10, -4, -12), (20, -18, -8), 3.5)),
        # posterior / anterior limbs of the internal capsule
        ("projection_fibres_internal_capsule", white & box((14, 28), (-22, 8), (-4, 18))),
        ("anterior_thalamus", tis & sphere((8, -8, 10), 5.0)),
        # caudate, putamen, pallidum: deep grey matter away from the cortex and thalamus
        (
            "basal_ganglia",
            (gm > 0.4) & box((8, 30), (-15, 24), (-8, 22)) & (depth >= 16) & ~thalamus,
        ),
        ("visual_pathway_meyers_loop", white & box((26, 42), (-36, -14), (-14, 2))),
        # sagittal stratum lateral to the occipital horn
        ("cerebellum_white_matter", white & box((6, 60), (-100, -38), (-70, -20))),
        (
            "visual_pathway_optic_radiation",
            white & box((22, 40), (-88, -36), (-10, 14)) & (vent <= 14),
        ),
    ]
    lobes = {
        "parieto_occipital": white & (y <= -36) & (z >= -12),
        "anterior_temporal": white & box((24, 80), (-26, 26), (-60, -6)),
        "frontal": white & (y >= -6) & (z >= -8),
    }
    # periventricular -> central -> subcortical: thirds of the lobe's white matter by depth
    # (distance from cortex minus distance from the ventricles), so each third is non-empty
    claimed = np.zeros_like(white)
    for _, mask in regions:
        claimed |= mask
    for lobe, mask in lobes.items():
        free = mask & ~claimed
        score = dgm - vent
        lo, hi = np.quantile(score[free], [1 / 3, 2 / 3]) if free.any() else (0.0, 0.0)
        regions.append((f"{lobe}_periventricular", free & (score >= hi)))
        regions.append((f"{lobe}_central", free & (score >= lo) & (score < hi)))
        regions.append((f"{lobe}_subcortical", free & (score < lo)))
        claimed |= free
    return regions


def _atrophy_regions(
    xyz: np.ndarray, tissue: np.ndarray, atlas: np.ndarray, voxel_mm: float
) -> dict:
    """(atrophy column, side) -> bool mask of the tissue that can be lost (field grid)."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    ax = np.abs(x)
    tis = tissue > 0.3
    spl = np.isin(atlas, [lesion_label("corpus_callosum_splenium", s) for s in SIDES])
    genu = np.isin(atlas, [lesion_label("corpus_callosum_genu", s) for s in SIDES])
    cc_grow = round(4.0 / voxel_mm)  # 4 mm: callosal atrophy thins it from its surfaces
    areas = {
        "parieto_occipital_atrophy": tis & (y <= -36) & (z >= -12),
        "anterior_temporal_atrophy": tis & (ax >= 24) & (y >= -26) & (y <= 26) & (z <= -6),
        "frontal_atrophy": tis & (y >= -6) & (z >= -8),
        "corpus_callosum_splenium_atrophy": ndimage.binary_dilation(spl, iterations=cc_grow) & tis,
        "corpus_callosum_genu_atrophy": ndimage.binary_dilation(genu, iterations=cc_grow) & tis,
        "cerebellum_atrophy": tis & (ax >= 4) & (y <= -38) & (z <= -20),
        "brainstem_atrophy": tis & (ax <= 12) & (y >= -42) & (y <= -12) & (z <= -8) & (z >= -60),
    }
    expected = {i.column for i in ATROPHY_ITEMS} - {"global_atrophy"}
    assert set(areas) == expected, set(areas) ^ expected
    return {
        (column, side): mask & ((x < 0) if side == "left" else (x > 0))
        for column, mask in areas.items()
        for side in SIDES
    }


def _grow_small_areas(
    atlas: np.ndarray, tissue: np.ndarray, x: np.ndarray, min_voxels: int = 20
) -> None:
    """Grow areas under ``min_voxels`` into free tissue on their side, in place.

    On the 4 mm field grid the thinnest brainstem tracts keep only 5-10 voxels, too few to
    survive smoothing and resampling into a scan; on the 2 mm grid every area is larger.
    """
    names = lesion_label_names()
    counts = np.bincount(atlas.ravel(), minlength=256)
    for label in np.flatnonzero((counts > 0) & (counts < min_voxels)):
        side = (x < 0) if names[label].endswith("_left") else (x > 0)
        area = atlas == label
        while area.sum() < min_voxels:
            ring = ndimage.binary_dilation(area) & tissue & side & (atlas == 0)
            if not ring.any():
                break
            atlas[ring] = label
            area |= ring


def anatomy_for(scan_resolution: float) -> Anatomy:
    """The anatomy scans of ``scan_resolution`` mm are drawn from: 2 mm for 4 mm or coarser.

    Coarse scans cannot show 1 mm detail, and with the 2 mm anatomy the tiny test cohort is
    written about 3.5 times faster.
    """
    return load_anatomy(2 if scan_resolution >= 4.0 else 1)


@functools.lru_cache(maxsize=len(ANATOMY_RESOLUTIONS))
def load_anatomy(resolution: int = 1) -> Anatomy:
    """Load the nilearn MNI template at ``resolution`` mm and build the Loes areas.

    Cached per process; the 1 mm anatomy takes about 2 s to build.
    """
    if resolution not in ANATOMY_RESOLUTIONS:
        raise ValueError(f"anatomy resolution must be one of {ANATOMY_RESOLUTIONS} mm.")
    templates = {k: load_template(k) for k in TEMPLATE_KINDS}
    raw = {k: np.asarray(image.dataobj, dtype=np.float32) for k, image in templates.items()}
    affine = templates["t1"].affine.astype(np.float64)
    if resolution == 2:
        raw = {k: _block_mean(v) for k, v in raw.items()}
        affine = affine @ _HALVE
    t1 = raw["t1"] / raw["t1"].max()
    gm, wm = raw["gm"], raw["wm"]
    gm, wm = gm / max(gm.max(), 1e-6), wm / max(wm.max(), 1e-6)
    brain = raw["brain_mask"]
    gm, wm = gm * brain, wm * brain
    csf = np.clip(brain - gm - wm, 0.0, 1.0) * (t1 > 0.05)

    low_affine = affine @ _HALVE
    low_mm = 2.0 * resolution
    gm2, wm2, csf2, brain2 = (_block_mean(v) for v in (gm, wm, csf, brain))
    idx = np.indices(gm2.shape, dtype=np.float32)
    xyz = np.moveaxis(np.tensordot(low_affine[:3, :3], idx, axes=1), 0, -1) + low_affine[:3, 3]
    xyz = xyz.astype(np.float32)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    tissue2 = gm2 + wm2

    # lateral and third ventricles: central CSF, largest connected pieces
    central = (np.abs(x) < 32) & (y > -48) & (y < 38) & (z > -12) & (z < 36)
    vent = (csf2 > 0.5) & central
    labels, n = ndimage.label(vent)
    sizes = ndimage.sum(vent, labels, index=np.arange(1, n + 1))
    vent = np.isin(labels, 1 + np.flatnonzero(sizes * low_mm**3 >= 160.0))  # mm^3

    def distance(mask: np.ndarray) -> np.ndarray:
        """mm from the nearest voxel outside ``mask``."""
        return ndimage.distance_transform_edt(mask, sampling=low_mm).astype(np.float32)

    dists = {
        "ventricle": distance(~vent),
        "gm": distance(gm2 < 0.5),
        "depth": distance(brain2 > 0.5),
    }
    atlas = np.zeros(gm2.shape, np.uint8)
    regions = _lesion_regions(xyz, gm2, wm2, tissue2, dists)
    assert sorted(c for c, _ in regions) == sorted(i.column for i in LESION_ITEMS)
    for column, mask in regions:
        for side in SIDES:
            half = (x < 0) if side == "left" else (x > 0)
            atlas[mask & half & (atlas == 0)] = lesion_label(column, side)
    _grow_small_areas(atlas, tissue2 > 0.5, x)
    csf_or_out = (csf2 > 0.5) | (brain2 < 0.5)
    return Anatomy(
        affine=affine,
        t1=t1,
        gm=gm,
        wm=wm,
        csf=csf,
        low_affine=low_affine,
        lesion_atlas=atlas,
        atrophy_regions=_atrophy_regions(xyz, tissue2, atlas, low_mm),
        dist_csf=distance(~csf_or_out),
        dist_ventricle=dists["ventricle"],
        tissue_low=tissue2.astype(np.float32),
        brain=brain.astype(np.float32),
    )
