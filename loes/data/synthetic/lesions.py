"""Per-session lesion and atrophy fields on the anatomy's MNI field grid, ready to be resampled.

A session's image is ``base * (1 - L - A) + Q`` where ``base`` is the template,
``L`` the lesion fraction (soft-edged union of the affected item areas), ``A`` the fraction
of tissue lost to CSF (atrophy) and ``Q`` the intensity that replaces it (lesion core and
edge, enhancing rim, CSF). The lesion mask is ``label`` wherever ``L >= 0.5``: ``label``
holds, for every voxel, the label of the nearest affected item side, so the mask shows
exactly the items scored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from loes.data.synthetic.anatomy import Anatomy, load_anatomy
from loes.data.synthetic.disease import SessionState

__all__ = [
    "CONTRASTS",
    "ContrastLevels",
    "SessionFields",
    "healthy_base",
    "session_fields",
    "subject_texture",
]


@dataclass(frozen=True)
class ContrastLevels:
    """Tissue intensities of one contrast, in template units (white matter about 0.87 on T1w)."""

    wm: float
    gm: float
    csf: float
    lesion_edge: float
    lesion_core: float
    rim: float  # added at the enhancing leading edge of post-contrast scans


CONTRASTS: dict[str, ContrastLevels] = {
    # T1w: lesions hypointense, necrotic core darker than the active edge; Gd rim bright
    "t1w": ContrastLevels(wm=0.87, gm=0.65, csf=0.30, lesion_edge=0.56, lesion_core=0.36, rim=0.45),
    # T2w: lesions hyperintense, core near CSF
    "t2w": ContrastLevels(wm=0.36, gm=0.56, csf=1.00, lesion_edge=0.74, lesion_core=0.90, rim=0.04),
    # FLAIR: CSF suppressed, lesions brightest at the edge
    "flair": ContrastLevels(
        wm=0.45, gm=0.62, csf=0.10, lesion_edge=0.95, lesion_core=0.80, rim=0.08
    ),
}


def healthy_base(contrast: str, gamma: float, anat: Anatomy) -> np.ndarray:
    """The healthy template of ``anat`` in ``contrast`` through a site's contrast curve
    ``x ** gamma`` (cached per anatomy resolution), on the anatomy's intensity grid."""
    return _healthy_base(contrast, float(gamma), anat.resolution)


@functools.lru_cache(maxsize=8)
def _healthy_base(contrast: str, gamma: float, resolution: int) -> np.ndarray:
    anat = load_anatomy(resolution)
    if contrast == "t1w":
        base = anat.t1
    else:
        lv = CONTRASTS[contrast]
        base = anat.wm * lv.wm + anat.gm * lv.gm + anat.csf * lv.csf
    return np.power(base, gamma, dtype=np.float32) if gamma != 1.0 else base.astype(np.float32)


@dataclass
class SessionFields:
    """MNI fields of one session on the field grid (``None`` when the scan shows no disease)."""

    lesion: np.ndarray | None  # L, 0-1
    atrophy: np.ndarray | None  # A, 0-1
    fill: np.ndarray | None  # Q
    label: np.ndarray | None  # uint8 nearest affected item side


def _smooth(volume: np.ndarray, sigma_mm: float, anat: Anatomy) -> np.ndarray:
    return ndimage.gaussian_filter(volume, sigma_mm / anat.field_mm)


def subject_texture(anat: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Smooth (3 mm) zero-mean unit-variance noise: the subject's own lesion heterogeneity."""
    field = _smooth(rng.standard_normal(anat.low_shape, dtype=np.float32), 3.0, anat)
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


def _soft(threshold: float, distance: np.ndarray, voxel_mm: float) -> np.ndarray:
    """1 where ``distance`` (mm) < threshold, falling to 0 over one voxel."""
    return np.clip((threshold - distance) / voxel_mm + 0.5, 0.0, 1.0)


def _atrophy(anat: Anatomy, state: SessionState) -> np.ndarray | None:
    parts = []
    mm = anat.field_mm
    for column, sides in state.sides.items():
        if not column.endswith("atrophy"):
            continue
        width = 2.5 if column.startswith(("corpus_callosum", "brainstem")) else 3.5
        for side in sides:
            region = anat.atrophy_regions[(column, side)]
            loss = _soft(width, anat.dist_csf, mm)
            if column.endswith("_atrophy") and column.split("_")[0] in {
                "parieto",
                "anterior",
                "frontal",
            }:
                loss = np.maximum(loss, _soft(4.0, anat.dist_ventricle, mm))  # local ex vacuo horn
            parts.append(loss * region)
    if state.global_atrophy:
        g = state.global_atrophy
        # sulci widen and the ventricles enlarge into the white matter with each point
        sulci = _soft(1.5 * g, anat.dist_csf, mm)
        ventricles = _soft(2.0 + 2.5 * g, anat.dist_ventricle, mm)
        parts.append(np.maximum(sulci, ventricles) * (anat.tissue_low > 0.2))
    if not parts:
        return None
    return (
        np.max(parts, axis=0).astype(np.float32) if len(parts) > 1 else parts[0].astype(np.float32)
    )


def session_fields(
    anat: Anatomy,
    state: SessionState,
    levels: ContrastLevels,
    texture: np.ndarray,
    gd: bool,
    gamma: float = 1.0,
) -> SessionFields:
    """The lesion, atrophy and fill fields of a session on the anatomy's field grid.

    ``gamma`` is the site's contrast curve (applied to the fill as it is to the template).
    """
    labels = state.lesion_labels()
    atrophy = _atrophy(anat, state)
    if not labels and atrophy is None:
        return SessionFields(None, None, None, None)
    fill = np.zeros(anat.low_shape, np.float32)
    lesion = label = None
    if labels:
        core_mask = np.isin(anat.lesion_atlas, labels)
        union = core_mask.astype(np.float32)
        lesion = np.clip(_smooth(union, 1.5, anat) * 1.25, 0.0, 1.0)
        depth = np.clip((_smooth(union, 4.0, anat) - 0.5) * 2.5, 0.0, 1.0)
        intensity = levels.lesion_edge + (levels.lesion_core - levels.lesion_edge) * depth
        intensity = intensity * (1.0 + 0.08 * texture)  # inner heterogeneity
        fill += lesion * np.clip(intensity, 0.02, None) ** gamma
        # nearest affected item side everywhere, so the soft edge keeps its item's label
        source = np.where(core_mask, anat.lesion_atlas, 0).astype(np.uint8)
        nearest = ndimage.distance_transform_edt(
            source == 0, return_distances=False, return_indices=True
        )
        label = np.where(lesion > 0, source[tuple(nearest)], 0).astype(np.uint8)
        if gd and state.new_labels and levels.rim:
            leading = _smooth(
                np.isin(anat.lesion_atlas, state.new_labels).astype(np.float32), 3.0, anat
            )
            rim = 4.0 * lesion * (1.0 - lesion) * (leading > 0.1)
            fill += levels.rim * rim * (1.0 + 0.3 * texture)
    if atrophy is not None:
        if lesion is not None:
            atrophy = np.minimum(atrophy, 1.0 - lesion)
        fill += atrophy * levels.csf**gamma
    return SessionFields(lesion, atrophy, fill.astype(np.float32), label)
