"""The training augmentation of :func:`loes.transforms.augmentation`, applied to a whole batch on
the device the batch lives on (:class:`RandBatchAugmentation`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from monai.networks.layers import AffineTransform
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandFlipd,
    RandGaussianNoised,
)
from monai.utils import TransformBackends, ensure_tuple

from loes.transforms.presets import augmentation

__all__ = ["RandBatchAugmentation"]

_EPSILON = 1e-7  # MONAI AdjustContrast's guard against a constant image


def _uniform(generator: torch.Generator, shape: tuple, low, high, like: torch.Tensor):
    """Uniform float32 draws in ``[low, high)`` on ``like``'s device; ``low`` and ``high`` are
    numbers, or sequences giving the bounds along the last axis (no host-to-device copy)."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=torch.float32)
    if isinstance(low, int | float):
        return low + (high - low) * u
    return torch.stack(
        [lo + (hi - lo) * u[..., i] for i, (lo, hi) in enumerate(zip(low, high, strict=True))], -1
    )


def _symmetric(ranges: tuple) -> tuple[tuple, tuple]:
    """MONAI's ``uniform(-r, r)`` bounds of each range ``r``."""
    return tuple(-r for r in ranges), tuple(ranges)


def _chosen(generator: torch.Generator, prob: float, like: torch.Tensor) -> torch.Tensor:
    """(B,) booleans, each true with probability ``prob`` (MONAI's ``R.rand() < prob``)."""
    return torch.rand(len(like), generator=generator, device=like.device) < prob


def _rotation(radians: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) rotations about axes 0, 1 then 2 by ``radians`` (B, 3), body-fixed ("XYZ"), as
    :func:`monai.transforms.utils.create_rotate` builds one."""
    cos, sin = torch.cos(radians), torch.sin(radians)
    one, zero = torch.ones_like(cos[:, 0]), torch.zeros_like(cos[:, 0])

    def matrix(rows):
        return torch.stack([torch.stack(row, -1) for row in rows], -2)

    (cx, cy, cz), (sx, sy, sz) = cos.unbind(1), sin.unbind(1)
    rx = matrix([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    ry = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = matrix([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    out = torch.eye(4, device=radians.device).repeat(len(radians), 1, 1)
    out[:, :3, :3] = rx @ ry @ rz
    return out


def _affine_matrices(
    radians: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """(B, 4, 4) matrices mapping output voxel coordinates, centred on the volume, to input
    ones: rotation @ translation @ scaling, the composition of MONAI's ``AffineGrid`` (no
    shear). ``radians``, ``translate`` (voxels) and ``scale`` (factors) are (B, 3)."""
    shift = torch.eye(4, device=radians.device).repeat(len(radians), 1, 1)
    shift[:, :3, 3] = translate
    stretch = torch.diag_embed(torch.cat([scale, torch.ones_like(scale[:, :1])], 1))
    return _rotation(radians) @ shift @ stretch


def _bias_field(coeff: torch.Tensor, spatial_shape) -> torch.Tensor:
    """(B, D, H, W) log bias fields: sum of ``coeff[b, i, j, k] P_i(x) P_j(y) P_k(z)`` over
    Legendre polynomials P_n on ``linspace(-1, 1)`` along each axis, as MONAI
    ``RandBiasField`` builds its field (``numpy.polynomial.legendre.leggrid3d``); ``coeff`` is
    (B, degree + 1, degree + 1, degree + 1)."""
    orders = range(coeff.shape[1])
    px, py, pz = (
        torch.stack(
            [
                torch.special.legendre_polynomial_p(
                    torch.linspace(-1.0, 1.0, size, device=coeff.device), n
                )
                for n in orders
            ],
            1,
        )
        for size in spatial_shape
    )
    return torch.einsum("bijk,xi,yj,zk->bxyz", coeff, px, py, pz)


def _only(preset: Compose, kind: type) -> Any | None:
    """The one transform of type ``kind`` in ``preset``, or None."""
    found = [t for t in preset.transforms if isinstance(t, kind)]
    return found[0] if found else None


class RandBatchAugmentation(torch.nn.Module):
    """The random augmentation of :func:`loes.transforms.augmentation` for a whole batch, in
    torch, on the device the batch is on: no copy to the host, one call per batch instead of
    one per scan.

    The same transforms in the same order with the same parameter ranges, each applied to each
    scan independently with its own probability: random affine (rotation about each axis,
    scaling per axis, translation in voxels; bilinear, zeros outside; MONAI ``RandAffine``),
    left-right flip (spatial axis 0; ``RandFlip``), polynomial bias field (the exponential of
    Legendre polynomials of degree 3 with coefficients drawn in ``[0, bias_coeff]``;
    ``RandBiasField``), Gaussian noise (SD drawn in ``[0, noise_std]``; ``RandGaussianNoise``)
    and gamma contrast (``((x - min) / range) ** gamma * range + min`` per scan;
    ``RandAdjustContrast``). The parameters are read from the MONAI transforms that
    :func:`augmentation` builds from the same arguments, so both paths have one source of
    defaults, ranges and checks. The affine resamples with MONAI's batched
    :class:`monai.networks.layers.AffineTransform` (``torch.nn.functional.grid_sample``).

    The elastic deformation (``elastic=True``) and label maps are not supported here: they stay
    on the per-scan path (``augmentation.where: loader``).

    Random numbers come from a ``torch.Generator`` on the batch's device, seeded by
    :meth:`set_random_state` (when never called, from ``torch.initial_seed()`` at the first
    call), so the same seed and the same batches give the same output on one device; a CPU and
    a CUDA generator give different draws. Every parameter is drawn for every scan, picked by
    its transform or not, so the draws do not depend on which scans were picked. A scan a
    transform skips is left bit for bit as it was. Outputs keep the input's memory layout
    (strides).

    Args:
        preset: a Compose made by :func:`augmentation` to copy; None: call it with ``kwargs``.
        indexed: transform only the scans each transform picks, found by reading the picks on
            the host (no work on the others, but a device sync per transform on CUDA);
            False: transform every scan and keep the picked ones with ``torch.where`` (no
            sync); None: indexed on a CPU only. The same output either way.
        kwargs: the arguments of :func:`augmentation` (``rotate_degrees``, ``translate_mm``,
            ``pixdim``, probabilities ...), with its defaults.

    Shapes:
        input and output (B, C, D, H, W) floating point, spatial axes in RAS order as
        :func:`loes.transforms.preprocessing` makes them (axis 0, D, runs left-right).

    Raises:
        ValueError: ``elastic=True``, label keys, or a preset holding a transform this class
            cannot apply (all named, with what to do); at call time, an input that is not
            (B, C, D, H, W).
        TypeError: an input that is not a floating-point tensor; the errors of
            :func:`augmentation` for bad arguments.

    Examples::

        >>> augment = RandBatchAugmentation(pixdim=2.0).set_random_state(seed=0)
        >>> images = torch.zeros(8, 1, 72, 88, 72, device="cuda")
        >>> augment(images).shape  # on the GPU, no copy to the host
        torch.Size([8, 1, 72, 88, 72])
    """

    backend: ClassVar[list] = [TransformBackends.TORCH]

    def __init__(
        self, preset: Compose | None = None, indexed: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        self.indexed = indexed
        if kwargs.get("elastic"):
            raise ValueError(
                "RandBatchAugmentation has no elastic deformation: with elastic=True augment "
                "each scan in the data loader (augmentation.where: loader, or auto)."
            )
        if kwargs.get("label_keys"):
            raise ValueError(
                "RandBatchAugmentation augments one image tensor; label maps need the per-scan "
                "augmentation() in the data loader."
            )
        preset = augmentation(**kwargs) if preset is None else preset
        known = (RandAffined, RandFlipd, RandBiasFieldd, RandGaussianNoised, RandAdjustContrastd)
        for t in preset.transforms:
            if not isinstance(t, known):
                raise ValueError(
                    f"RandBatchAugmentation cannot apply {type(t).__name__}; augment each scan "
                    "in the data loader instead (augmentation.where: loader)."
                )
        affine = _only(preset, RandAffined)
        if affine is not None:
            grid = affine.rand_affine.rand_affine_grid
            if any(s is not None for s in grid.shear_range):
                raise ValueError("RandBatchAugmentation has no shear; use the loader path.")
            self.affine_prob = float(affine.prob)
            self.rotate_range = tuple(float(r) for r in grid.rotate_range)  # radians
            self.translate_range = tuple(float(r) for r in grid.translate_range)  # voxels
            self.scale_range = tuple(float(r) for r in grid.scale_range)
        else:
            self.affine_prob = 0.0
            self.rotate_range = self.translate_range = self.scale_range = (0.0, 0.0, 0.0)
        flip = _only(preset, RandFlipd)
        self.flip_prob = 0.0 if flip is None else float(flip.prob)
        self.flip_axes = () if flip is None else ensure_tuple(flip.flipper.spatial_axis)
        bias = _only(preset, RandBiasFieldd)
        self.bias_prob = 0.0 if bias is None else float(bias.prob)
        self.bias_range = (0.0, 0.0) if bias is None else bias.rand_bias_field.coeff_range
        self.bias_degree = 3 if bias is None else int(bias.rand_bias_field.degree)
        noise = _only(preset, RandGaussianNoised)
        self.noise_prob = 0.0 if noise is None else float(noise.prob)
        self.noise_mean = 0.0 if noise is None else float(noise.rand_gaussian_noise.mean)
        self.noise_std = 0.0 if noise is None else float(noise.rand_gaussian_noise.std)
        self.sample_std = True if noise is None else bool(noise.rand_gaussian_noise.sample_std)
        contrast = _only(preset, RandAdjustContrastd)
        self.contrast_prob = 0.0 if contrast is None else float(contrast.prob)
        self.gamma_range = (1.0, 1.0) if contrast is None else tuple(contrast.adjuster.gamma)
        if contrast is not None and (
            contrast.adjuster.invert_image or contrast.adjuster.retain_stats
        ):
            raise ValueError("RandBatchAugmentation has no invert_image/retain_stats contrast.")
        self.warp = AffineTransform(
            normalized=False, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        self._seed: int | None = None
        self._generator: torch.Generator | None = None

    def set_random_state(self, seed: int | None = None) -> RandBatchAugmentation:
        """Restart the random draws from ``seed`` (None: from ``torch.initial_seed()``) on
        whatever device the next batch is on; returns ``self``, as MONAI's transforms do."""
        self._seed = seed
        self._generator = None
        return self

    def _random(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            seed = torch.initial_seed() if self._seed is None else self._seed
            self._generator = torch.Generator(device=device).manual_seed(seed % 2**63)
        return self._generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment ``images`` (B, C, D, H, W); returns a new tensor of the same shape, dtype,
        device and memory layout."""
        if not isinstance(images, torch.Tensor) or not torch.is_floating_point(images):
            raise TypeError(
                "RandBatchAugmentation needs a floating-point torch tensor, got "
                + (
                    f"a {images.dtype} tensor."
                    if isinstance(images, torch.Tensor)
                    else f"a {type(images).__module__}.{type(images).__name__} (convert it with "
                    "torch.as_tensor)."
                )
            )
        if images.dim() != 5:
            raise ValueError(
                f"RandBatchAugmentation needs a batch of 3D volumes (B, C, D, H, W), got shape "
                f"{tuple(images.shape)}."
            )
        images = images.as_subclass(torch.Tensor)
        x = images.clone(memory_format=torch.contiguous_format)
        g = self._random(x.device)
        x = self._affine(x, g)
        x = self._flip(x, g)
        x = self._bias(x, g)
        x = self._noise(x, g)
        x = self._contrast(x, g)
        if x.stride() == images.stride():
            return x
        # the input's strides: channels_last_3d in, channels_last_3d out, also with one channel
        # (where ``contiguous(memory_format=...)`` keeps NCDHW strides and convolutions then
        # run in NCDHW)
        return torch.empty_like(images).copy_(x)

    def _apply(self, x: torch.Tensor, chosen: torch.Tensor, transform) -> torch.Tensor:
        """``transform(x[scans], scans)`` for the ``chosen`` (B,) scans, the others as they are.

        Indexed (:attr:`indexed`): only the chosen scans are transformed, one at a time, in
        place (``x`` is :meth:`forward`'s own copy), at the cost of reading ``chosen`` on the
        host (a device sync on CUDA); otherwise every scan is transformed at once and
        ``torch.where`` keeps the chosen ones: more arithmetic, no sync. Same values either way.
        """
        indexed = x.device.type == "cpu" if self.indexed is None else self.indexed
        if not indexed:
            return torch.where(chosen.view(-1, 1, 1, 1, 1), transform(x, slice(None)), x)
        for i in chosen.nonzero().flatten().tolist():
            x[i : i + 1] = transform(x[i : i + 1], slice(i, i + 1))
        return x

    def _affine(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        chosen = _chosen(g, self.affine_prob, x)
        n = (len(x), 3)
        radians = _uniform(g, n, *_symmetric(self.rotate_range), x)
        translate = _uniform(g, n, *_symmetric(self.translate_range), x)
        scale = 1.0 + _uniform(g, n, *_symmetric(self.scale_range), x)
        # AffineTransform takes voxel indices (0..d-1): centre, map, shift back
        centre, uncentre = torch.eye(4, device=x.device), torch.eye(4, device=x.device)
        for axis, size in enumerate(x.shape[2:]):
            centre[axis, 3], uncentre[axis, 3] = (size - 1) / 2, -(size - 1) / 2
        theta = centre @ _affine_matrices(radians, translate, scale) @ uncentre
        return self._apply(
            x, chosen, lambda v, scans: self.warp(v.float(), theta[scans]).to(x.dtype)
        )

    def _flip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        chosen = _chosen(g, self.flip_prob, x)
        if not self.flip_axes:
            return x
        return self._apply(x, chosen, lambda v, _: v.flip([2 + a for a in self.flip_axes]))

    def _bias(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        chosen = _chosen(g, self.bias_prob, x)
        k = self.bias_degree + 1
        # coefficients of P_i(x) P_j(y) P_k(z) with i + j + k <= degree, as RandBiasField's
        orders = torch.arange(k, device=x.device)
        allowed = (orders.view(-1, 1, 1) + orders.view(1, -1, 1) + orders.view(1, 1, -1)) < k
        coeff = _uniform(g, (len(x), k, k, k), *self.bias_range, x) * allowed

        def field(v, scans):
            return v * torch.exp(_bias_field(coeff[scans], x.shape[2:])).unsqueeze(1).to(x.dtype)

        return self._apply(x, chosen, field)

    def _noise(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        chosen = _chosen(g, self.noise_prob, x)
        std = torch.full((len(x),), self.noise_std, device=x.device)
        if self.sample_std:
            std = _uniform(g, (len(x),), 0.0, self.noise_std, x)
        noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
        std = std.to(x.dtype).view(-1, 1, 1, 1, 1)

        def add(v, scans):
            v = v + noise[scans] * std[scans]
            return v + self.noise_mean if self.noise_mean else v

        return self._apply(x, chosen, add)

    def _contrast(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        chosen = _chosen(g, self.contrast_prob, x)
        gamma = _uniform(g, (len(x),), *self.gamma_range, x).to(x.dtype).view(-1, 1, 1, 1, 1)

        def adjust(v, scans):
            low = v.amin(dim=(1, 2, 3, 4), keepdim=True)
            span = v.amax(dim=(1, 2, 3, 4), keepdim=True) - low
            return ((v - low) / (span + _EPSILON)) ** gamma[scans] * span + low

        return self._apply(x, chosen, adjust)

    def extra_repr(self) -> str:
        return (
            f"affine_prob={self.affine_prob}, rotate_range={self.rotate_range}, "
            f"translate_range={self.translate_range}, scale_range={self.scale_range}, "
            f"flip_prob={self.flip_prob}, bias_prob={self.bias_prob}, "
            f"bias_range={self.bias_range}, noise_prob={self.noise_prob}, "
            f"noise_std={self.noise_std}, contrast_prob={self.contrast_prob}, "
            f"gamma_range={self.gamma_range}"
        )
