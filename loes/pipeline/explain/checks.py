"""Is a saliency map right? Checked against the lesions a scan is known to hold.

For a positive map ``s``, a lesion mask and a brain mask on the same grid (model space):

- **relevance mass accuracy** (Arras et al. 2022, Information Fusion 81:14-40, "CLEVR-XAI"):
  the share of the map's mass in the brain that lies in the lesions. A map that ignores the
  lesions scores the lesions' share of the brain (``lesion_share``); ``mass_ratio`` is the
  one over the other (1: no better than chance).
- **ROC AUC** of the map's values for lesion against non-lesion brain voxels (scikit-learn's
  ``roc_auc_score``; 0.5: chance).
- **pointing game** (Zhang et al. 2018, IJCV 126:1084-1102): whether the map's peak lies in a
  lesion; where several voxels share the peak value, the share of them that do (a map that is
  flat over the brain scores the lesions' share of the brain).

The same numbers for two maps that know nothing, on the same scans: :func:`random_map`
(uniform noise over the brain) and the brain mask itself. :func:`rank_correlation` compares a
map with the map of the same network with randomised weights (Adebayo et al. 2018, NeurIPS):
near 1, the map shows the architecture and the input, not what was learnt.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from loes.errors import LoesError

__all__ = ["TRUTH_METRICS", "is_flat", "random_map", "rank_correlation", "truth_metrics"]

TRUTH_METRICS = ("relevance_mass_accuracy", "lesion_share", "mass_ratio", "auc", "pointing")
"""The keys of :func:`truth_metrics` that compare a map with the lesions."""


def _check(saliency: np.ndarray, *masks: np.ndarray) -> None:
    for mask in masks:
        if mask.shape != saliency.shape:
            raise LoesError(
                f"a mask of shape {mask.shape} does not lie on the map's grid {saliency.shape}."
            )


def is_flat(saliency) -> bool:
    """Whether a map is one value everywhere, up to float rounding (0 everywhere included): it
    then points nowhere."""
    values = np.asarray(saliency, dtype=np.float64)
    top = float(np.abs(values).max())
    return top == 0 or float(np.ptp(values)) <= 1e-6 * top


def truth_metrics(saliency, lesion, brain) -> dict[str, float]:
    """How well a map points at the lesions, over the brain's voxels.

    Args:
        saliency: (D, H, W) map; its negative values count as 0.
        lesion: (D, H, W) bool (or label) mask of the lesions; only its voxels in the brain count.
        brain: (D, H, W) bool mask of the brain.

    Returns:
        ``relevance_mass_accuracy``, ``lesion_share``, ``mass_ratio``, ``auc``, ``pointing``
        (NaN when there is no lesion in the brain), plus ``mass`` (the map's sum over the
        brain, in the map's units), ``outside_brain`` (the share of the map's total mass
        outside the brain) and ``flat`` (:func:`is_flat`). A flat map, 0 everywhere included,
        scores what the brain mask scores: chance (mass accuracy the lesions' share, AUC 0.5,
        pointing the lesions' share, as a peak shared by every voxel).

    Raises:
        LoesError: when the masks are not on the map's grid, the brain mask is empty, or the
            map has NaN or infinite values.
    """
    saliency = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    lesion, brain = np.asarray(lesion) > 0, np.asarray(brain) > 0
    _check(saliency, lesion, brain)
    if not brain.any():
        raise LoesError("the brain mask is empty: no voxel to check the map on.")
    if not np.isfinite(saliency).all():
        raise LoesError("the map has NaN or infinite values: it cannot be checked.")
    flat = is_flat(saliency)
    inside = saliency[brain]
    hit = lesion[brain]
    mass, total = float(inside.sum()), float(saliency.sum())
    share = float(hit.mean()) if hit.any() else float("nan")
    if not hit.any():
        rma = auc = pointing = float("nan")
    elif flat:
        rma, auc, pointing = share, 0.5, share
    else:
        rma = float(inside[hit].sum()) / mass if mass > 0 else 0.0
        auc = float(roc_auc_score(hit, inside)) if not hit.all() else float("nan")
        peak = saliency == saliency.max()
        pointing = float((lesion & brain)[peak].mean())
    return {
        "relevance_mass_accuracy": rma,
        "lesion_share": share,
        "mass_ratio": rma / share,
        "auc": auc,
        "pointing": pointing,
        "mass": mass,
        "outside_brain": max(0.0, (total - mass) / total) if total > 0 else float("nan"),
        "flat": flat,
    }


def random_map(brain, seed: int = 0) -> np.ndarray:
    """Uniform noise in [0, 1) over the brain, 0 elsewhere: a map that knows nothing."""
    brain = np.asarray(brain) > 0
    noise = np.random.default_rng(seed).random(brain.shape)
    return np.where(brain, noise, 0.0)


def rank_correlation(a, b, brain) -> float:
    """Spearman's rank correlation of two maps over the brain's voxels (NaN when either is
    flat, :func:`is_flat`, there)."""
    brain = np.asarray(brain) > 0
    a, b = np.asarray(a)[brain], np.asarray(b)[brain]
    if is_flat(a) or is_flat(b):
        return float("nan")
    return float(spearmanr(a, b).statistic)
