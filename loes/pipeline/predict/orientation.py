"""Is a scan upside down or back to front against its header? A scan whose voxels were flipped
(a conversion or export slip) keeps a header that says nothing is wrong: MONAI's ``Orientation``
then brings it to RAS faithfully, upside down. Left-right mirroring cannot be seen this way (a
head is nearly symmetric); head-to-foot and front-to-back flips can, because a head is not.

Each preprocessed input is reduced to a coarse picture of :data:`COARSE_SHAPE` voxels (mean
pooling), and the training scans' pictures are averaged into a template. A new scan is compared
(Pearson correlation) with the template as it is, flipped head to foot, flipped front to back and
both (turned 180 degrees about the left-right axis). When a flipped version matches better by
more than :data:`MARGIN`, the scan is flagged.

Measured on the built-in synthetic cohort (template of 32 training scans, 12 other scans):
correlation 0.93-0.98 as given against at most 0.85 flipped; the same scans with their voxels
flipped head to foot or front to back match the flipped template at 0.92-0.98 and the upright
one at 0.76-0.85. A check against a template, not a registration: a scan whose head fills the
box unlike any training scan (a cropped field of view) can match poorly every way; the field of
view screen of :class:`~loes.pipeline.predict.scan_profile.TrainingProfile` flags those.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["COARSE_SHAPE", "MARGIN", "coarse_picture", "orientation_flag"]

#: voxels of the coarse picture of a model input, per axis
COARSE_SHAPE = (12, 12, 12)
#: a flipped version must correlate better than the scan as given by this much to be flagged
MARGIN = 0.05

_FLIPS = {
    "upside down (head and foot swapped against the header)": ("SI",),
    "back to front (face where the header puts the back of the head)": ("AP",),
    "turned 180 degrees (head to foot and front to back against the header)": ("SI", "AP"),
}


def coarse_picture(image: torch.Tensor) -> np.ndarray:
    """The mean-pooled (adaptive average pooling) picture of a model input (C, D, H, W), its
    channels averaged: a float32 array of :data:`COARSE_SHAPE`."""
    x = torch.as_tensor(image, dtype=torch.float32).detach().cpu().mean(0)[None, None]
    return F.adaptive_avg_pool3d(x, COARSE_SHAPE)[0, 0].numpy()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else float("nan")


def orientation_flag(picture: np.ndarray, template: np.ndarray, axes: dict[str, int]) -> str | None:
    """Why the scan whose :func:`coarse_picture` is ``picture`` looks flipped against the
    ``template`` (the training scans' mean picture), or None.

    Args:
        picture, template: arrays of :data:`COARSE_SHAPE`.
        axes: the spatial axis of the model input that runs ``"SI"`` and ``"AP"`` (see
            :func:`loes.pipeline.run.inference.anatomical_axis`).
    """
    picture, template = np.asarray(picture, float), np.asarray(template, float)
    given = _correlation(picture, template)
    if not np.isfinite(given):
        return None
    scores = {
        what: _correlation(np.flip(picture, [axes[d] for d in directions]), template)
        for what, directions in _FLIPS.items()
    }
    what, best = max(scores.items(), key=lambda item: item[1])
    if best > given + MARGIN:
        return (
            f"looks {what}: it matches the training scans better flipped (correlation "
            f"{best:.2f}) than as given ({given:.2f}), so check its conversion to NIfTI"
        )
    return None
