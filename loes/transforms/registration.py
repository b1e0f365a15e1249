"""Rigid then affine registration to the MNI template (SimpleITK) as a MONAI transform pair."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import SimpleITK as sitk
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import InvertibleTransform, MapTransform, SpatialResample
from monai.utils import TraceKeys, TransformBackends, convert_to_tensor, ensure_tuple_rep

from loes.data.template import load_template, template_grid
from loes.transforms._itk import as_numpy_affine, itk_affine_to_ras, single_threaded, to_sitk

__all__ = [
    "TEMPLATE_TRANSFORM_KEY",
    "RegisterToTemplate",
    "RegisterToTemplateD",
    "RegisterToTemplateDict",
    "RegisterToTemplated",
    "optimise",
]

TEMPLATE_TRANSFORM_KEY = "template_transform"
TRANSFORM_TYPES = ("rigid", "affine")


def optimise(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    *,
    histogram_bins: int,
    sampling_percentage: float,
    seed: int,
    iterations: int,
    shrink_factors: Sequence[int],
    smoothing_sigmas: Sequence[float],
    deterministic: bool = True,
) -> None:
    """Fit ``transform`` (in place; it maps ``fixed`` points to ``moving`` points) by SimpleITK's
    multi-resolution registration: Mattes mutual information on a random sample of voxels,
    regular-step gradient descent with scales from physical shifts, smoothing in mm."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(sampling_percentage, seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(smoothing_sigmas))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    if deterministic:
        method.SetNumberOfThreads(1)
    method.Execute(fixed, moving)


class RegisterToTemplate(InvertibleTransform):
    """Register a native scan to the MNI ICBM152 2009 template and resample it onto its grid.

    A rigid (Euler 3D) then an affine SimpleITK registration (Mattes mutual information,
    multi-resolution, centred on the intensity moments) is fitted against nilearn's template
    at ``template_resolution`` mm. The scan is then resampled once, with MONAI's
    ``SpatialResample``, onto the template's field of view at ``pixdim`` (default: the
    template's 1 mm grid). The fitted 4x4 RAS matrix, mapping template (MNI) millimetres to
    native scanner millimetres, is stored in ``meta["template_transform"]`` and in the applied
    operation, so :py:meth:`inverse` (and ``Invertd``) bring a model-space map back onto the
    native grid.

    Args:
        pixdim: output voxel size in mm on the template's field of view; None for 1 mm.
        transform_type: ``"affine"`` (rigid then affine) or ``"rigid"`` only.
        template_resolution: resolution in mm of the template the scan is registered to.
        shrink_factors: per-level shrink factors of the multi-resolution pyramid.
        smoothing_sigmas: per-level Gaussian smoothing in mm.
        sampling_percentage: fraction of template voxels sampled by the metric.
        iterations: maximum optimiser iterations per stage (rigid, then affine).
        histogram_bins: bins of the Mattes mutual information.
        mode, padding_mode, align_corners: interpolation of the resampling (MONAI conventions).
        seed: seed (>= 1) of the metric's random sampling, so results are reproducible.
        deterministic: fit on one thread, so the same scan always gives the same transform (as
            a CacheDataset expects); False is up to a few tens of percent faster.
        dtype: data type of the resampling computation.

    Examples::

        >>> register = RegisterToTemplate(pixdim=2.0)
        >>> mni = register(scan)  # scan: (1, H, W, D) MetaTensor with its scanner affine
        >>> mni.meta["template_transform"]  # 4x4, MNI mm -> native mm
        >>> native = register.inverse(mni)
    """

    # fitted in NumPy/SimpleITK, resampled in torch by SpatialResample: always a MetaTensor out
    backend: ClassVar[list] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        pixdim: float | Sequence[float] | None = None,
        transform_type: str = "affine",
        template_resolution: int = 2,
        shrink_factors: Sequence[int] = (4, 2, 1),
        smoothing_sigmas: Sequence[float] = (4.0, 2.0, 1.0),
        sampling_percentage: float = 0.05,
        iterations: int = 100,
        histogram_bins: int = 32,
        mode: str | int = "bilinear",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        seed: int = 1,
        deterministic: bool = True,
        dtype: DtypeLike = np.float32,
    ) -> None:
        if transform_type not in TRANSFORM_TYPES:
            raise ValueError(
                f"unknown transform_type {transform_type!r}; choose one of {TRANSFORM_TYPES}."
            )
        if len(shrink_factors) != len(smoothing_sigmas) or not shrink_factors:
            raise ValueError(
                "shrink_factors and smoothing_sigmas need one value per level, got "
                f"{tuple(shrink_factors)} and {tuple(smoothing_sigmas)}."
            )
        if min(shrink_factors) < 1:
            raise ValueError(f"shrink_factors must be >= 1, got {tuple(shrink_factors)}.")
        if not 0 < sampling_percentage <= 1:
            raise ValueError(f"sampling_percentage must be in (0, 1], got {sampling_percentage}.")
        if seed < 1:  # SimpleITK reads 0 as "seed from the wall clock"
            raise ValueError(f"seed must be >= 1 for reproducible registration, got {seed}.")
        if iterations < 1:
            raise ValueError(f"iterations must be positive, got {iterations}.")
        self.pixdim = pixdim
        self.grid = template_grid(1.0 if pixdim is None else pixdim)  # validates pixdim early
        self.transform_type = transform_type
        self.template_resolution = int(template_resolution)
        self.shrink_factors = tuple(int(s) for s in shrink_factors)
        self.smoothing_sigmas = tuple(float(s) for s in smoothing_sigmas)
        self.sampling_percentage = float(sampling_percentage)
        self.iterations = int(iterations)
        self.histogram_bins = int(histogram_bins)
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.resampler = SpatialResample(mode, padding_mode, align_corners, dtype)

    def fit(self, img: NdarrayOrTensor) -> np.ndarray:
        """The 4x4 RAS matrix mapping template (MNI) mm to the scan's mm (first channel used)."""
        with single_threaded(self.deterministic):
            return self._fit(img)

    def _fit(self, img: NdarrayOrTensor) -> np.ndarray:
        img_t = convert_to_tensor(img, track_meta=True)
        if img_t.ndim != 4:
            raise ValueError(f"expected a channel-first 3D image (C, H, W, D), got {img_t.shape}.")
        affine = as_numpy_affine(img_t.affine if isinstance(img_t, MetaTensor) else None)
        array = img_t[0].detach().cpu().numpy().astype(np.float32, copy=False)
        template = load_template("t1", self.template_resolution)
        fixed = to_sitk(np.asarray(template.dataobj, dtype=np.float32), template.affine)
        moving = to_sitk(array, affine)
        # average native voxels down to about the template's resolution: the optimiser never
        # looks finer, and smoothing a 1 mm scan at every pyramid level dominates the time
        factors = [max(1, round(self.template_resolution / s)) for s in moving.GetSpacing()]
        if max(factors) > 1:
            moving = sitk.BinShrink(moving, factors)
        transform = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
        self._optimise(fixed, moving, transform)
        if self.transform_type == "affine":
            rigid, transform = transform, sitk.AffineTransform(3)
            transform.SetCenter(rigid.GetCenter())
            transform.SetMatrix(rigid.GetMatrix())
            transform.SetTranslation(rigid.GetTranslation())
            self._optimise(fixed, moving, transform)
        return itk_affine_to_ras(transform)

    def _optimise(self, fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> None:
        optimise(
            fixed,
            moving,
            transform,
            histogram_bins=self.histogram_bins,
            sampling_percentage=self.sampling_percentage,
            seed=self.seed,
            iterations=self.iterations,
            shrink_factors=self.shrink_factors,
            smoothing_sigmas=self.smoothing_sigmas,
            deterministic=self.deterministic,
        )

    def __call__(
        self,
        img: NdarrayOrTensor,
        transform: np.ndarray | torch.Tensor | None = None,
        mode: str | int | None = None,
        padding_mode: str | None = None,
    ) -> torch.Tensor:
        """Register ``img`` (or apply a ``transform`` from :py:meth:`fit`) and resample it."""
        img_t = convert_to_tensor(img, track_meta=True)
        if not isinstance(img_t, MetaTensor):
            img_t = MetaTensor(img_t)
        matrix = self.fit(img_t) if transform is None else as_numpy_affine(transform)
        src_affine = as_numpy_affine(img_t.peek_pending_affine())
        dst_affine, spatial_size = self.grid
        # the scan's voxels expressed in template mm: resampling onto the template grid then
        # reads native voxel  inv(src) @ matrix @ dst  for each template voxel.
        moved = img_t.clone()
        moved.affine = torch.as_tensor(np.linalg.solve(matrix, src_affine), dtype=torch.float64)
        mode = self.resampler.mode if mode is None else mode
        padding_mode = self.resampler.padding_mode if padding_mode is None else padding_mode
        with self.resampler.trace_transform(False):
            out = self.resampler(
                moved, dst_affine=torch.as_tensor(dst_affine), spatial_size=spatial_size,
                mode=mode, padding_mode=padding_mode,
            )  # fmt: skip
        matrix_t = torch.as_tensor(matrix, dtype=torch.float64)
        out.meta[TEMPLATE_TRANSFORM_KEY] = matrix_t
        extra_info = {
            "src_affine": torch.as_tensor(src_affine, dtype=torch.float64),
            TEMPLATE_TRANSFORM_KEY: matrix_t,
            "mode": mode,
            "padding_mode": padding_mode,
            "align_corners": self.resampler.align_corners,
        }
        self.push_transform(out, orig_size=img_t.shape[1:], extra_info=extra_info)
        return out if get_track_meta() else out.as_tensor()

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        transform = self.pop_transform(data)
        info = transform[TraceKeys.EXTRA_INFO]
        matrix = as_numpy_affine(info[TEMPLATE_TRANSFORM_KEY])
        align_corners = info.get("align_corners")
        moved = data.clone()
        moved.affine = torch.as_tensor(matrix @ as_numpy_affine(data.peek_pending_affine()))
        with self.resampler.trace_transform(False):
            out = self.resampler(
                moved,
                dst_affine=torch.as_tensor(as_numpy_affine(info["src_affine"])),
                spatial_size=transform[TraceKeys.ORIG_SIZE],
                mode=info.get("mode", self.resampler.mode),
                padding_mode=info.get("padding_mode", self.resampler.padding_mode),
                align_corners=False if align_corners in (None, TraceKeys.NONE) else align_corners,
            )
        out.meta.pop(TEMPLATE_TRANSFORM_KEY, None)
        return out


class RegisterToTemplated(MapTransform, InvertibleTransform):
    """Dictionary-based wrapper of :py:class:`RegisterToTemplate`.

    The registration is fitted once on ``reference_key`` (default: the first key) and the same
    transform resamples every key, each with its own ``mode`` (``"nearest"`` for label maps).

    Args:
        keys: keys of the images to resample onto the template.
        reference_key: key of the image the registration is fitted on; default ``keys[0]``.
        mode: interpolation per key.
        padding_mode: padding per key.
        allow_missing_keys: don't raise an exception if a key is missing.
        kwargs: the other arguments of :py:class:`RegisterToTemplate`.

    Examples::

        >>> register = RegisterToTemplated(["image", "label"], mode=["bilinear", "nearest"])
        >>> data = register({"image": scan, "label": lesions})
    """

    backend = RegisterToTemplate.backend

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        mode: Sequence[str | int] | str | int = "bilinear",
        padding_mode: Sequence[str] | str = "zeros",
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = self.keys[0] if reference_key is None else reference_key
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.padding_mode = ensure_tuple_rep(padding_mode, len(self.keys))
        self.register = RegisterToTemplate(**kwargs)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.reference_key not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(
                f"Key `{self.reference_key}` of transform `{self.__class__.__name__}` was missing "
                "in the data and allow_missing_keys==False."
            )
        matrix = self.register.fit(d[self.reference_key])
        for key, mode, padding_mode in self.key_iterator(d, self.mode, self.padding_mode):
            d[key] = self.register(d[key], transform=matrix, mode=mode, padding_mode=padding_mode)
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.register.inverse(d[key])
        return d


RegisterToTemplateD = RegisterToTemplateDict = RegisterToTemplated
