"""N4 bias-field correction (SimpleITK) as a MONAI array/dictionary transform pair."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import SimpleITK as sitk
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from loes.transforms._itk import as_numpy_affine, from_sitk, to_sitk

__all__ = [
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectionD",
    "N4BiasFieldCorrectionDict",
    "N4BiasFieldCorrectiond",
]

MASK_MODES = ("foreground", "otsu")
# interpolated scans carry tiny positive values at the brain edge whose logarithm would stretch
# N4's intensity histogram until the brain fits in one bin: they are left out of the mask.
_FOREGROUND_FRACTION = 0.01


class N4BiasFieldCorrection(Transform):
    """Remove the smooth multiplicative intensity bias of an MRI with SimpleITK's N4.

    The field is fitted on the image shrunk by ``shrink_factor`` inside a brain mask (the
    ``mask`` argument, else the foreground or an Otsu threshold), then evaluated and divided out
    at full resolution. Works channel by channel on channel-first ``(C, H, W, D)`` input; the
    voxel spacing comes from the MetaTensor's affine, so the MetaTensor and its affine are kept.
    The computation runs in NumPy/SimpleITK on the CPU (hence ``backend``); the result comes
    back as a MetaTensor (a plain tensor when meta tracking is off) on the input's device.

    Args:
        shrink_factor: fit the field on the image shrunk by this integer factor (speed).
        fit_spacing: if given, overrides ``shrink_factor``: shrink to about this voxel size in mm
            (e.g. 6.0 gives a factor 6 at 1 mm and 3 at 2 mm).
        iterations: maximum iterations per fitting level; its length is the number of levels.
        convergence_threshold: stop a level when the field changes less than this.
        control_points: B-spline control points per axis at the first level.
        mask_mode: brain mask used when no ``mask`` is given: ``"foreground"`` (voxels above 1% of
            the 99th intensity percentile, for skull-stripped or registered scans) or ``"otsu"``.
        dtype: output data type.

    Examples::

        >>> n4 = N4BiasFieldCorrection(shrink_factor=4)
        >>> corrected = n4(image)  # image: (1, H, W, D) MetaTensor, numpy array or tensor
    """

    # the field is fitted and divided out in NumPy/SimpleITK, whatever the input type
    backend: ClassVar[list] = [TransformBackends.NUMPY]

    def __init__(
        self,
        shrink_factor: int = 4,
        fit_spacing: float | None = None,
        iterations: Sequence[int] = (50, 50, 30),
        convergence_threshold: float = 1e-3,
        control_points: int = 4,
        mask_mode: str = "foreground",
        dtype: DtypeLike = np.float32,
    ) -> None:
        if int(shrink_factor) != shrink_factor or shrink_factor < 1:
            raise ValueError(f"shrink_factor must be a positive integer, got {shrink_factor!r}.")
        iterations = tuple(int(i) for i in iterations)
        if not iterations or min(iterations) < 1:
            raise ValueError(f"iterations must be positive integers, got {iterations!r}.")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode {mask_mode!r}; choose one of {MASK_MODES}.")
        if control_points < 4:
            raise ValueError(
                f"control_points must be at least 4 (spline order + 1), got {control_points}."
            )
        if fit_spacing is not None and fit_spacing <= 0:
            raise ValueError(f"fit_spacing must be positive mm, got {fit_spacing!r}.")
        self.shrink_factor = int(shrink_factor)
        self.fit_spacing = fit_spacing
        self.iterations = iterations
        self.convergence_threshold = float(convergence_threshold)
        self.control_points = int(control_points)
        self.mask_mode = mask_mode
        self.dtype = dtype

    def __call__(
        self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None
    ) -> NdarrayOrTensor:
        """Correct ``img`` (channel first) inside ``mask`` (optional, same shape, > 0 is brain)."""
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        affine = as_numpy_affine(img_t.affine if isinstance(img_t, MetaTensor) else None)
        array = img_t.detach().cpu().numpy().astype(np.float32, copy=False)
        if array.ndim != 4:
            raise ValueError(
                f"expected a channel-first 3D image (C, H, W, D), got shape {array.shape}."
            )
        mask_np = None
        if mask is not None:
            mask_np = np.asarray(convert_to_tensor(mask, track_meta=False).cpu().numpy()) > 0
            if mask_np.ndim == 4:
                mask_np = mask_np[0]
            if mask_np.shape != array.shape[1:]:
                raise ValueError(
                    f"mask shape {mask_np.shape} differs from image {array.shape[1:]}."
                )
        out = np.stack([self._correct(channel, affine, mask_np) for channel in array])
        return convert_to_dst_type(out, img_t, dtype=self.dtype)[0]

    def _correct(
        self, array: np.ndarray, affine: np.ndarray, mask: np.ndarray | None
    ) -> np.ndarray:
        positive = array > 0
        sample = array[::2, ::2, ::2]  # a percentile estimate needs no more voxels
        if (sample > 0).any():
            positive &= array > _FOREGROUND_FRACTION * np.percentile(sample[sample > 0], 99)
        if mask is not None:
            brain = mask & positive  # N4 works on log intensities
        elif self.mask_mode == "otsu":
            otsu = sitk.OtsuThreshold(to_sitk(array, affine), 0, 1, 200)
            brain = (from_sitk(otsu) > 0) & positive
        else:
            brain = positive
        if brain.sum() < 100:
            raise ValueError(
                f"N4 needs a brain mask of positive voxels, found {int(brain.sum())}; "
                "pass a mask or check that the image is not empty or already normalised."
            )
        image = to_sitk(array, affine)
        mask_image = to_sitk(brain.astype(np.uint8), affine)
        if self.fit_spacing is None:
            factors = [self.shrink_factor] * 3
        else:
            factors = [max(1, round(self.fit_spacing / s)) for s in image.GetSpacing()]
        shrunk = sitk.Shrink(image, factors)
        shrunk_mask = sitk.Shrink(mask_image, factors)
        n4 = sitk.N4BiasFieldCorrectionImageFilter()
        n4.SetMaximumNumberOfIterations(list(self.iterations))
        n4.SetConvergenceThreshold(self.convergence_threshold)
        n4.SetNumberOfControlPoints([self.control_points] * 3)
        n4.Execute(shrunk, shrunk_mask)
        log_field = from_sitk(n4.GetLogBiasFieldAsImage(image))
        return array / np.exp(log_field, dtype=np.float32)


class N4BiasFieldCorrectiond(MapTransform):
    """Dictionary-based wrapper of :py:class:`N4BiasFieldCorrection`.

    Args:
        keys: keys of the images to correct.
        mask_key: optional key of a brain mask (``> 0`` is brain) shared by all ``keys``.
        allow_missing_keys: don't raise an exception if a key is missing.
        kwargs: the arguments of :py:class:`N4BiasFieldCorrection`.

    Examples::

        >>> n4 = N4BiasFieldCorrectiond("image", shrink_factor=4)
        >>> data = n4({"image": image})
    """

    backend = N4BiasFieldCorrection.backend

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str | None = None,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.corrector = N4BiasFieldCorrection(**kwargs)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        mask = None
        if self.mask_key is not None:
            if self.mask_key not in d:
                raise KeyError(
                    f"Mask key `{self.mask_key}` of transform `{self.__class__.__name__}` "
                    "was missing in the data."
                )
            mask = d[self.mask_key]
        for key in self.key_iterator(d):
            d[key] = self.corrector(d[key], mask)
        return d


N4BiasFieldCorrectionD = N4BiasFieldCorrectionDict = N4BiasFieldCorrectiond
