"""Brain extraction (skull stripping) with deepbet as a MONAI array/dictionary transform pair.

The network is deepbet's (Fisch et al. 2024, "deepbet: Fast brain extraction of T1-weighted MRI
using Convolutional Neural Networks", Computers in Biology and Medicine; MIT licence,
https://github.com/wwu-mmll/deepbet): two TorchScript U-Nets shipped inside its wheel, so nothing
is downloaded at run time. :func:`is_skull_stripped` tells scans that are already brain-only
from whole heads, from the image alone.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Hashable, Mapping
from typing import ClassVar

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from loes.transforms._itk import as_numpy_affine
from loes.transforms.foreground import BrainForeground

#: the decision of ``auto`` for each scan, at INFO (``loes`` commands print it)
_LOG = logging.getLogger(__name__)

__all__ = [
    "MAX_BRAIN_ML",
    "SkullStrip",
    "SkullStripD",
    "SkullStripDict",
    "SkullStripd",
    "is_skull_stripped",
]

#: the largest non-background volume, in mL, that :func:`is_skull_stripped` takes for a brain.
#: Intracranial volumes (brain and CSF) are about 1.1-1.9 L from age 4 on, 1.88 L for the generous
#: MNI152 mask; a head with scalp, skull and face is more (pydeface's mean head 3.2-3.6 L, ROBEX's
#: atlas head, cropped tight, 2.2 L above its air).
MAX_BRAIN_ML = 2000.0

_LOCK = threading.Lock()  # deepbet's extractor keeps per-call state (its bounding box)


@functools.lru_cache(maxsize=4)
def _extractor(device: str):
    """deepbet's ``BrainExtraction`` with its two networks on ``device``, loaded once."""
    from deepbet import BrainExtraction  # imported lazily: loads TorchScript on first use

    with warnings.catch_warnings():  # deepbet's networks are TorchScript files
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        extractor = BrainExtraction(no_gpu=True)
    extractor.model.to(device)
    extractor.bbox_model.to(device)
    return extractor


def _channel_first(img: NdarrayOrTensor, what: str) -> torch.Tensor:
    img_t = convert_to_tensor(img, track_meta=get_track_meta())
    if img_t.ndim != 4:
        raise ValueError(
            f"{what} expects a channel-first 3D image (C, H, W, D), got shape "
            f"{tuple(img_t.shape)}; add EnsureChannelFirst(d) after loading."
        )
    return img_t


def _affine(img: torch.Tensor, affine: NdarrayOrTensor | None = None) -> np.ndarray:
    if affine is not None:
        return as_numpy_affine(affine)
    return as_numpy_affine(img.affine if isinstance(img, MetaTensor) else None)


def is_skull_stripped(
    image: NdarrayOrTensor,
    affine: NdarrayOrTensor | None = None,
    max_brain_ml: float = MAX_BRAIN_ML,
) -> bool:
    """Whether a scan is already brain-only (skull-stripped), decided from the image alone.

    A scan counts as skull-stripped when both hold:

    1. the tissue is found: the voxels off a constant background (one value, often 0, within a
       relative tolerance, filling at least 40% of the volume, as :class:`BrainForeground`
       detects it), or, when the background is noisy air, the voxels above the lower of the
       scan's two three-class Otsu thresholds (air; CSF and bone; tissue; SimpleITK);
    2. that tissue measures at most ``max_brain_ml`` mL. This tells stripped brains
       (1.1-1.9 L) from whole heads (scalp, face and neck: 2.2 L and more; ROBEX's atlas head
       2.2 L, pydeface's mean head 3.6 L), whether their air is noisy, set to zero (scanner
       masking, defacing) or padded by a resampling. Air noise above 5% of the brightest voxel
       defeats the Otsu split.

    Voxel volumes come from the affine, so the answer does not depend on the voxel size or
    orientation. Limits: a whole head cropped tightly to the skull of a young child, with an
    exactly constant background, can measure under 2 L and be taken for a stripped brain.

    Args:
        image: channel-first ``(C, H, W, D)`` image (numpy array, tensor or MetaTensor).
        affine: 4x4 voxel-to-world matrix in mm; default the MetaTensor's affine, else 1 mm voxels.
        max_brain_ml: the largest foreground volume in mL taken for a brain.

    Returns:
        True for a brain-only scan, False for a whole head.

    Raises:
        ValueError: ``image`` is not channel-first 3D, or ``max_brain_ml`` is not positive.
    """
    if not max_brain_ml > 0:
        raise ValueError(f"max_brain_ml must be positive mL, got {max_brain_ml!r}.")
    img_t = _channel_first(image, "is_skull_stripped")
    array = img_t.detach().cpu().numpy()
    return _stripped_brain(array, _affine(img_t, affine), max_brain_ml) is not None


def _stripped_brain(array: np.ndarray, affine: np.ndarray, max_brain_ml: float):
    """The (H, W, D) mask of the tissue of a stripped ``(C, H, W, D)`` scan, or None when the
    scan is a whole head: the voxels off a constant background when there is one, else those
    above the first channel's lower three-class Otsu threshold (SimpleITK), which parts noisy
    air from the rest."""
    background = BrainForeground().constant_background(array)
    if background is not None:
        value, tolerance = background
        foreground = np.any(np.abs(array - value) > tolerance, axis=0)
    else:  # three Otsu classes (air; CSF and bone; tissue): everything above the air
        otsu = sitk.OtsuMultipleThresholdsImageFilter()
        otsu.SetNumberOfThresholds(2)
        otsu.Execute(sitk.GetImageFromArray(np.asarray(array[0], dtype=np.float32)))
        foreground = array[0] > otsu.GetThresholds()[0]
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    return foreground if foreground.sum() * voxel_ml <= max_brain_ml else None


class SkullStrip(Transform):
    """Extract the brain of a head MRI with deepbet and set everything else to ``fill_value``.

    deepbet finds the brain's bounding box with a first network on the scan scaled to 128^3,
    segments the box scaled to 256^3 with a second, then keeps the largest connected component
    with its holes filled. The scan is only turned to its closest canonical (RAS) axes, never
    resampled, and the mask comes back on the input grid: any orientation, any voxel size. On
    pydeface's mean head, 2 mm, 3 mm and 1x1x4 mm grids gave masks at Dice 0.986 or more with the
    1 mm one, and resampling to 1 mm first changed that by under 0.006: nothing is resampled.
    deepbet was trained on T1-weighted scans. The first channel drives the mask; every channel
    is masked.

    Works on numpy arrays, tensors and MetaTensors (meta and affine kept, the type returned as
    given). The networks run in torch on ``device`` (default: the input's device, so CPU for
    images loaded from files; 6-12 s per scan on a shared 2-core CPU whatever the voxel size,
    as the network always sees 256^3 voxels; ROBEX took 11-15 times as long).

    Args:
        threshold: probability in (0, 1) above which a voxel is brain.
        dilate: grow (> 0) or shrink (< 0) the mask by this many voxels (deepbet's ``n_dilate``).
        fill_value: value of the non-brain voxels; None leaves the image unchanged (only the mask,
            with :meth:`brain_mask` or :class:`SkullStripd`'s ``mask_key``).
        auto: skip the network for scans that :func:`is_skull_stripped` finds brain-only; their
            mask is then every voxel off the constant background.
        device: torch device of the networks; None for the input's device.
        max_brain_ml: the ``max_brain_ml`` of :func:`is_skull_stripped` (with ``auto``).

    Raises:
        ValueError: an argument out of range; an image that is not channel-first 3D, holds
            non-finite values, is constant, or in which deepbet finds no brain.

    Examples::

        >>> strip = SkullStrip()
        >>> brain = strip(image)  # (1, H, W, D) MetaTensor: non-brain voxels set to 0
        >>> mask = strip.brain_mask(image)  # (1, H, W, D) float32, 1 inside the brain
    """

    backend: ClassVar[list] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        threshold: float = 0.5,
        dilate: int = 0,
        fill_value: float | None = 0.0,
        auto: bool = False,
        device: str | torch.device | None = None,
        max_brain_ml: float = MAX_BRAIN_ML,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}.")
        if isinstance(dilate, bool) or int(dilate) != dilate:
            raise ValueError(f"dilate must be an integer number of voxels, got {dilate!r}.")
        if fill_value is not None and not np.isfinite(float(fill_value)):
            raise ValueError(f"fill_value must be a finite number or None, got {fill_value!r}.")
        if not max_brain_ml > 0:
            raise ValueError(f"max_brain_ml must be positive mL, got {max_brain_ml!r}.")
        self.threshold = float(threshold)
        self.dilate = int(dilate)
        self.fill_value = None if fill_value is None else float(fill_value)
        self.auto = bool(auto)
        self.device = None if device is None else torch.device(device)
        self.max_brain_ml = float(max_brain_ml)

    def brain_mask(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The brain mask of ``img`` (channel first), ``(1, H, W, D)`` float32 in {0, 1}.

        Returned with ``img``'s type; a MetaTensor carries ``img``'s meta and affine, so it
        follows later spatial transforms as a label map (``mode="nearest"``).
        """
        img_t = _channel_first(img, self.__class__.__name__)
        affine = _affine(img_t)
        array = img_t[0].detach().cpu().numpy().astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError(f"{_name(img_t)} holds NaN or infinite values; fix or drop the scan.")
        if not array.max() > array.min():
            raise ValueError(f"{_name(img_t)} is constant ({array.min()}): there is no head in it.")
        mask = _stripped_brain(array[None], affine, self.max_brain_ml) if self.auto else None
        if mask is None:
            mask = self._deepbet(array, affine, img_t)
            if self.auto:
                _LOG.info("%s: a whole head; skull-stripped by deepbet", _name(img_t))
        else:
            _LOG.info("%s: skull-stripped already; kept as it is", _name(img_t))
        return convert_to_dst_type(mask[None].astype(np.float32), img, dtype=torch.float32)[0]

    def _deepbet(self, array: np.ndarray, affine: np.ndarray, img_t: torch.Tensor) -> np.ndarray:
        device = self.device if self.device is not None else img_t.device
        extractor = _extractor(str(device))
        with _LOCK:
            try:
                _, mask, _ = extractor.run(
                    nib.Nifti1Image(array, affine), threshold=self.threshold, n_dilate=self.dilate
                )
            except (AssertionError, ValueError) as error:  # empty bounding box or no component
                raise ValueError(
                    f"deepbet found no brain in {_name(img_t)} (shape {array.shape}): is it a "
                    f"head MRI with its affine? ({error})"
                ) from None
        return np.asarray(mask.dataobj) > 0

    def __call__(
        self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None
    ) -> NdarrayOrTensor:
        """``img`` with its non-brain voxels set to ``fill_value``; ``mask`` (same spatial shape,
        > 0 is brain) skips the network."""
        img_t = _channel_first(img, self.__class__.__name__)
        if self.fill_value is None:
            return img
        if mask is None:
            mask = self.brain_mask(img_t)
        mask_t = convert_to_tensor(mask, track_meta=False).to(img_t.device)
        if mask_t.ndim == 3:
            mask_t = mask_t[None]
        if mask_t.shape[1:] != img_t.shape[1:]:
            raise ValueError(
                f"brain mask of shape {tuple(mask_t.shape[1:])} does not fit the image's "
                f"{tuple(img_t.shape[1:])}; compute it on the same grid."
            )
        out = torch.where(mask_t > 0, img_t, torch.as_tensor(self.fill_value, dtype=img_t.dtype))
        return convert_to_dst_type(out, img)[0]


def _name(img: torch.Tensor) -> str:
    name = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
    return str(name) if name else "the image"


class SkullStripd(MapTransform):
    """Dictionary-based wrapper of :py:class:`SkullStrip`.

    The mask is computed once, on ``source_key`` (default: the first key), stored under
    ``mask_key`` and applied to every key.

    Args:
        keys: keys of the images to strip (all on one grid).
        mask_key: key under which the brain mask is stored, ``(1, H, W, D)`` float32 in {0, 1}
            with the source image's meta and affine (e.g. for ``CropForegroundd(source_key=...)``
            or ``N4BiasFieldCorrectiond(mask_key=...)``); None stores nothing.
        source_key: key of the image the mask is computed on; default ``keys[0]``.
        allow_missing_keys: don't raise an exception if a key is missing.
        kwargs: the arguments of :py:class:`SkullStrip`.

    Raises:
        ValueError: ``mask_key`` is also one of ``keys``.
        KeyError: ``source_key`` missing from the data (unless ``allow_missing_keys``).

    Examples::

        >>> strip = SkullStripd(["t1", "flair"], mask_key="brain_mask")
        >>> data = strip({"t1": t1, "flair": flair})  # data["brain_mask"]: (1, H, W, D)
    """

    backend = SkullStrip.backend

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str | None = "brain_mask",
        source_key: str | None = None,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if mask_key is not None and mask_key in self.keys:
            raise ValueError(f"mask_key {mask_key!r} is also an image key; give it its own name.")
        self.mask_key = mask_key
        self.source_key = self.keys[0] if source_key is None else source_key
        self.stripper = SkullStrip(**kwargs)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.source_key not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(
                f"Key `{self.source_key}` of transform `{self.__class__.__name__}` was missing "
                "in the data and allow_missing_keys==False."
            )
        mask = self.stripper.brain_mask(d[self.source_key])
        for key in self.key_iterator(d):
            d[key] = self.stripper(d[key], mask)
        if self.mask_key is not None:
            d[self.mask_key] = mask
        return d


SkullStripD = SkullStripDict = SkullStripd
