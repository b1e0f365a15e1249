"""Registered subtraction of two sessions of one subject (SimpleITK rigid registration) as a
MONAI dictionary transform: the change image a paired network reads."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, SpatialResample

from loes.transforms._itk import as_numpy_affine, itk_affine_to_ras, single_threaded, to_sitk
from loes.transforms.registration import optimise

__all__ = [
    "SESSION_TRANSFORM_KEY",
    "RegisteredSubtractionD",
    "RegisteredSubtractionDict",
    "RegisteredSubtractiond",
    "registered_subtraction",
]

#: Meta key of the fitted rigid transform: 4x4 RAS, earlier session mm -> later session mm.
SESSION_TRANSFORM_KEY = "session_transform"


def _image(value: object, name: str) -> MetaTensor:
    if not isinstance(value, MetaTensor) or value.ndim != 4 or value.shape[0] != 1:
        raise ValueError(
            f"{name} must be a one-channel 3D MetaTensor (1, D, H, W) with its affine, got "
            f"{type(value).__name__} of shape {tuple(getattr(value, 'shape', ()))}."
        )
    return value


def registered_subtraction(
    earlier: NdarrayOrTensor,
    later: NdarrayOrTensor,
    shrink_factors: Sequence[int] = (2, 1),
    smoothing_sigmas: Sequence[float] = (2.0, 0.0),
    sampling_percentage: float = 0.25,
    iterations: int = 200,
    histogram_bins: int = 32,
    seed: int = 1,
    deterministic: bool = True,
) -> MetaTensor:
    """The later session minus the earlier one after rigidly registering the later onto the
    earlier: registered subtraction, as in subtraction MRI of new lesions (Moraal et al.,
    Radiology 2009;250:506).

    The rigid (Euler 3D) transform is fitted by SimpleITK (Mattes mutual information, so two
    sites' contrasts still register; a multi-resolution pyramid of ``shrink_factors`` with
    ``smoothing_sigmas`` in mm), and the later scan is resampled once onto the earlier scan's
    grid by MONAI's ``SpatialResample`` (trilinear). Both scans are expected to be preprocessed
    alike (e.g. by :func:`loes.transforms.preprocessing`, whose z-score leaves the background
    at 0): the difference is kept where both scans have signal and set to 0 elsewhere.

    Args:
        earlier, later: (1, D, H, W) MetaTensors with their RAS affines (mm), one subject.
        seed: seed (>= 1) of the metric's random sampling; ``deterministic`` fits on one thread,
            so the same pair always gives the same image.

    Returns:
        A (1, D, H, W) float32 MetaTensor on the earlier scan's grid and affine, in the scans'
        intensity units; ``meta["session_transform"]`` holds the fitted 4x4 RAS matrix
        (earlier-session mm to later-session mm).

    Raises:
        ValueError: when an input is not a one-channel 3D MetaTensor, or seed < 1.
    """
    earlier_t, later_t = _image(earlier, "earlier"), _image(later, "later")
    if seed < 1:  # SimpleITK reads 0 as "seed from the wall clock"
        raise ValueError(f"seed must be >= 1 for a reproducible registration, got {seed}.")
    earlier_affine = as_numpy_affine(earlier_t.affine)
    later_affine = as_numpy_affine(later_t.affine)
    fixed = to_sitk(earlier_t[0].detach().cpu().numpy().astype(np.float32), earlier_affine)
    moving = to_sitk(later_t[0].detach().cpu().numpy().astype(np.float32), later_affine)
    transform = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    with single_threaded(deterministic):
        optimise(
            fixed,
            moving,
            transform,
            histogram_bins=histogram_bins,
            sampling_percentage=sampling_percentage,
            seed=seed,
            iterations=iterations,
            shrink_factors=shrink_factors,
            smoothing_sigmas=smoothing_sigmas,
            deterministic=deterministic,
        )
    matrix = itk_affine_to_ras(transform)
    # the later scan's voxels in earlier-session mm, resampled onto the earlier grid
    moved = MetaTensor(
        later_t.as_tensor().float(),
        affine=torch.as_tensor(np.linalg.solve(matrix, later_affine), dtype=torch.float64),
    )
    resampler = SpatialResample(mode="bilinear", padding_mode="zeros", dtype=np.float32)
    with resampler.trace_transform(False):
        registered = resampler(
            moved,
            dst_affine=torch.as_tensor(earlier_affine, dtype=torch.float64),
            spatial_size=tuple(earlier_t.shape[1:]),
        )
    base = earlier_t.as_tensor().float()
    after = registered.as_tensor().to(base.device)
    both = (base != 0) & (after != 0)
    out = MetaTensor((after - base) * both, affine=earlier_t.affine.clone())
    out.meta[SESSION_TRANSFORM_KEY] = torch.as_tensor(matrix, dtype=torch.float64)
    return out


class RegisteredSubtractiond(MapTransform):
    """Dictionary transform of :func:`registered_subtraction`: ``data[output_key]`` becomes
    the later session (``later_key``) minus the earlier one (``earlier_key``), registered onto
    the earlier scan's grid; the inputs are left in place.

    Args:
        earlier_key, later_key: keys of the two preprocessed (1, D, H, W) MetaTensors.
        output_key: key of the (1, D, H, W) change image.
        allow_missing_keys: return the data unchanged when a key is missing.
        kwargs: the registration arguments of :func:`registered_subtraction`.

    Examples::

        >>> subtract = RegisteredSubtractiond("earlier", "later", output_key="image")
        >>> change = subtract({"earlier": scan_2019, "later": scan_2021})["image"]
    """

    def __init__(
        self,
        earlier_key: str = "earlier",
        later_key: str = "later",
        output_key: str = "image",
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__([earlier_key, later_key], allow_missing_keys)
        self.earlier_key, self.later_key, self.output_key = earlier_key, later_key, output_key
        self.kwargs = kwargs

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        missing = [k for k in (self.earlier_key, self.later_key) if k not in d]
        if missing:
            if self.allow_missing_keys:
                return d
            raise KeyError(
                f"Key `{missing[0]}` of transform `{type(self).__name__}` was missing in the "
                "data and allow_missing_keys==False."
            )
        d[self.output_key] = registered_subtraction(
            d[self.earlier_key], d[self.later_key], **self.kwargs
        )
        return d


RegisteredSubtractionD = RegisteredSubtractionDict = RegisteredSubtractiond
