"""Thick slices simulated in the paired change model's training pairs (``change.thick_slices``).

A third of the synthetic cohorts' consecutive pairs hold a 2D clinical scan with slices of 3.5 to
6 mm, and on them the paired network detected progression worst (``docs/limitations.md``): a
thick scan subtracted from a thin one leaves partial-volume edges that read as change. Each
training pair is therefore, at random, re-read as if one of its two sessions had been acquired
with thick slices: that session blurred along one axis by a Gaussian slice profile (the
resolution randomisation of SynthSeg, Billot et al., Medical Image Analysis 2023, by MONAI's
``GaussianSmooth``), and the two subtracted again, so that the network learns what thickness does
to a subtraction image and not to read it as disease.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.data import MetaTensor
from monai.transforms import GaussianSmooth, Randomizable
from torch.utils.data import Dataset

__all__ = ["FWHM_RANGE", "ThickSlicePairs"]

#: range of the simulated slice profile's full width at half maximum, mm
FWHM_RANGE = (3.0, 6.0)
_FWHM_PER_SIGMA = 2.3548  # 2 sqrt(2 ln 2), to the 4 decimals the measured runs used


class ThickSlicePairs(Dataset, Randomizable):
    """The paired network's training pairs, each, with probability ``prob``, with one session
    re-read with thick slices.

    Pair ``k``'s item is that of ``pairs[k]``; when drawn, its ``image`` (the registered
    subtraction, later minus earlier, (1, D, H, W) on the earlier scan's grid) is rebuilt: the
    later scan as the earlier one (``scans[earlier[k]]["image"]``, the same grid) plus the
    subtraction, then one of the two, each with probability 1/2, blurred along one axis drawn
    at random by a Gaussian slice profile of full width at half maximum drawn uniformly in
    :data:`FWHM_RANGE` mm (beyond the grid's own ``pixdim`` on that axis: the Gaussian's FWHM
    is ``sqrt(fwhm**2 - pixdim**2)``, none when the grid is as coarse), and the difference
    taken where both scans have signal (0 elsewhere, as
    :func:`loes.transforms.registered_subtraction` does). The true change is left as it is.

    The draws come from the dataset's own generator (MONAI :class:`~monai.transforms.Randomizable`
    ``R``, which MONAI's data loaders seed from torch's global generator when they are made, as
    they seed the augmentation's transforms; training seeds it per fold and epoch), pair by pair
    in the order the pairs are read, in this order: whether to re-slice, the axis, the FWHM,
    which session. So a run repeats whichever thread reads the pairs: torch's global generator,
    which the training thread's dropout draws from at the same time, is never touched.

    Raises:
        ValueError: when ``earlier`` does not give one scan per pair, ``prob`` is not in
            [0, 1] or ``pixdim`` does not give 3 positive sizes.
    """

    def __init__(
        self,
        pairs: Dataset,
        scans: Dataset,
        earlier: Sequence[int],
        pixdim: Sequence[float],
        prob: float = 0.5,
    ) -> None:
        if len(earlier) != len(pairs):
            raise ValueError(f"earlier gives {len(earlier)} scans for {len(pairs)} pairs.")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}.")
        if len(pixdim) != 3 or min(pixdim) <= 0:
            raise ValueError(f"pixdim must be 3 positive voxel sizes in mm, got {pixdim}.")
        self.pairs, self.scans, self.earlier = pairs, scans, [int(i) for i in earlier]
        self.pixdim, self.prob = [float(p) for p in pixdim], float(prob)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict:
        item = dict(self.pairs[k])
        if self.R.rand() < 1.0 - self.prob:
            return item
        change = item["image"]
        subtraction = torch.as_tensor(change).float()
        earlier = torch.as_tensor(self.scans[self.earlier[k]]["image"]).float()
        earlier = earlier.to(subtraction.device)
        later = earlier + subtraction
        axis = int(self.R.randint(3))
        fwhm = float(self.R.uniform(*FWHM_RANGE))
        spacing = self.pixdim[axis]
        sigma = [0.0, 0.0, 0.0]
        sigma[axis] = math.sqrt(max(fwhm**2 - spacing**2, 0.0)) / _FWHM_PER_SIGMA / spacing
        blur = GaussianSmooth(sigma)
        if self.R.rand() < 0.5:
            later = torch.as_tensor(blur(later)).float()
        else:
            earlier = torch.as_tensor(blur(earlier)).float()
        both = (earlier != 0) & (later != 0)
        values = ((later - earlier) * both).as_subclass(torch.Tensor)
        if isinstance(change, MetaTensor):  # its type kept: a batch mixes drawn and not drawn
            values = MetaTensor(values, meta=dict(change.meta))  # its affine too
        item["image"] = values
        return item
