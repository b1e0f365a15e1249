"""The foreground of a brain MRI for MONAI's ``CropForegroundd``, whatever its intensity scale."""

from __future__ import annotations

import numpy as np
from monai.transforms.utils_pytorch_numpy_unification import percentile
from monai.utils import convert_data_type

__all__ = ["BrainForeground"]


class BrainForeground:
    """Foreground for cropping to the head or brain, whatever the intensity scale.

    A ``select_fn`` for MONAI's ``CropForegroundd``, on a channel-first image (numpy array,
    tensor or MetaTensor), returning a boolean mask of the same shape and type:

    - **skull-stripped or masked scans**: when at least 40% of the voxels share one value (the
      minimum, or the median of the volume's faces) within a relative tolerance, that value is
      the background and every other voxel is foreground. The whole brain is kept, whatever
      the scale: raw, z-scored, WhiteStripe/RAVEL (white matter near 0, most of the brain
      below it), or a tiny float range. A whole brain fills at most about half of its
      bounding box, so such a volume is at least about half background.
    - **native scans**: voxels above ``fraction`` of the way from the background level (0 for
      non-negative magnitude images, else the minimum) to the 99th percentile, so the Rician
      noise of the background is cropped away and the crop is tight around the head.

    Args:
        fraction: in [0, 1), the native threshold's place between background and the 99th
            percentile.

    Raises:
        ValueError: ``fraction`` outside [0, 1) (called ``foreground_fraction`` in the preset).

    Examples::

        >>> from monai.transforms import CropForegroundd
        >>> crop = CropForegroundd("image", source_key="image", select_fn=BrainForeground())
    """

    #: share of the voxels one value must fill to be taken as a constant background
    constant_share = 0.4

    def __init__(self, fraction: float = 0.25) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"foreground_fraction must be in [0, 1), got {fraction!r}.")
        self.fraction = fraction

    def __call__(self, image):
        background = self.constant_background(image)
        if background is not None:
            value, tolerance = background
            return abs(image - value) > tolerance
        level = min(float(image.min()), 0.0)
        return image > level + self.fraction * (float(percentile(image, 99)) - level)

    def constant_background(self, image) -> tuple[float, float] | None:
        """``(value, tolerance)`` of a constant background filling at least
        :attr:`constant_share` of ``image``, or None (a native scan)."""
        x = convert_data_type(image, np.ndarray)[0]
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:  # constant or empty: nothing to tell apart
            return None
        # resampling a constant changes it by a few ulps; brain voxels differ by much more
        eps = float(np.finfo(x.dtype).eps) if x.dtype.kind == "f" else 0.0
        tolerance = 1e-4 * (hi - lo) + 16 * eps * max(abs(lo), abs(hi))
        spatial = range(1, x.ndim)
        faces = np.concatenate([np.take(x, i, axis=d).ravel() for d in spatial for i in (0, -1)])
        sample = x.reshape(-1)[::7]  # a share needs no more voxels (speed)
        share, value = max(
            (float(np.mean(np.abs(sample - c) <= tolerance)), c) for c in (lo, np.median(faces))
        )
        return (float(value), tolerance) if share >= self.constant_share else None
