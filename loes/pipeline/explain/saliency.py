"""Where a Loes model looks: saliency maps from ``monai.visualize``, for a network with one
regression output.

Every method is MONAI's; this module only adapts a :class:`~loes.models.LoesModel` (which
returns (B,) Loes points) to the (B, classes) logits MONAI's explainers expect, picks the layer,
and makes every map positive, so maps of every method can be compared on the same terms:

======================  =====================================================================
``gradcam``             ``GradCAM`` (Selvaraju et al. 2017, ICCV) on the last 3D convolution,
                        trilinearly upsampled to the input; ReLU of the weighted activations
``gradcampp``           ``GradCAMpp`` (Chattopadhay et al. 2018, WACV), the same layer
``vanillagrad``         ``VanillaGrad`` (Simonyan et al. 2014, ICLR workshop): the gradient's
                        magnitude, in Loes points per unit of normalised intensity
``smoothgrad``          ``SmoothGrad`` (Smilkov et al. 2017): root mean square of the gradients
                        of noisy copies of the scan
``occlusion``           ``OcclusionSensitivity`` (Zeiler and Fergus 2014, ECCV): how many Loes
                        points the prediction loses when a cube of the scan is blurred away
                        (MONAI's Gaussian occlusion), positive part
======================  =====================================================================

GradCAM and gradient maps cost about one backward pass per scan; occlusion costs one forward
pass per window (:func:`occlusion_windows`). :func:`randomized` gives the same network with
re-initialised weights, the model randomisation test of Adebayo et al. 2018 (NeurIPS, "Sanity
checks for saliency maps"): a map that barely changes does not depend on what was learnt.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from monai.data.utils import dense_patch_slices
from monai.visualize import GradCAM, GradCAMpp, OcclusionSensitivity, SmoothGrad, VanillaGrad
from torch import nn

from loes.errors import LoesError

__all__ = [
    "SALIENCY_METHODS",
    "SaliencySettings",
    "check_layer",
    "last_convolution",
    "occlusion_windows",
    "randomized",
    "saliency_map",
]

SALIENCY_METHODS: tuple[str, ...] = (
    "gradcam",
    "gradcampp",
    "vanillagrad",
    "smoothgrad",
    "occlusion",
)
"""The methods :func:`saliency_map` knows, cheapest first."""


@dataclass(frozen=True)
class SaliencySettings:
    """How the maps are made.

    Attributes:
        layer: module name of the layer GradCAM and GradCAM++ weight (``"network.features.14"``);
            None: the network's last 3D convolution (:func:`last_convolution`).
        smoothgrad_samples: noisy copies SmoothGrad averages over (MONAI's default, 25).
        smoothgrad_noise: SD of SmoothGrad's Gaussian noise as a share of the scan's intensity
            range (Smilkov et al. suggest 0.1-0.2).
        occlusion_size: edge of the occluded cube, voxels of the model input.
        occlusion_stride: voxels between neighbouring cubes (at most ``occlusion_size``).
        occlusion_batch: occluded copies per forward pass.
    """

    layer: str | None = None
    smoothgrad_samples: int = 25
    smoothgrad_noise: float = 0.15
    occlusion_size: int = 16
    occlusion_stride: int = 8
    occlusion_batch: int = 16

    def __post_init__(self) -> None:
        if self.occlusion_size < 1:
            raise LoesError(
                f"the occlusion cube must be at least 1 voxel, got {self.occlusion_size}."
            )
        if self.smoothgrad_samples < 1:
            raise LoesError(
                f"smoothgrad samples must be at least 1, got {self.smoothgrad_samples}."
            )
        if not 0 < self.smoothgrad_noise < 1:
            raise LoesError(f"smoothgrad noise must be in (0, 1), got {self.smoothgrad_noise}.")
        if not 1 <= self.occlusion_stride <= self.occlusion_size:
            raise LoesError(
                f"the occlusion stride must be between 1 and the cube's size "
                f"({self.occlusion_size} voxels), got {self.occlusion_stride}."
            )
        if self.occlusion_batch < 1:
            raise LoesError(f"the occlusion batch must be at least 1, got {self.occlusion_batch}.")

    def of(self, method: str) -> dict:
        """The settings that shape ``method``'s maps (what a saved map must match to be reused)."""
        prefix = {"smoothgrad": "smoothgrad_", "occlusion": "occlusion_"}.get(method)
        settings = asdict(self)
        if method in ("gradcam", "gradcampp"):
            return {"layer": self.layer}
        if prefix is None:
            return {}
        return {
            k: v for k, v in settings.items() if k.startswith(prefix) and k != "occlusion_batch"
        }


class _Logits(nn.Module):
    """A Loes model's (B,) output as the (B, 1) logits MONAI's explainers select a class from."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, None]


def _grids(model: nn.Module, spatial_size: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The output grid (spatial shape) of every 3D convolution for one input of
    ``spatial_size``, from a forward pass on zeros with hooks."""
    grids: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, _inputs, output) -> None:  # None: the output stays as it is
            grids.setdefault(name, tuple(output.shape[2:]))

        return hook

    hooks = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv3d)
    ]
    training = model.training
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.zeros((1, 1, *spatial_size), device=device))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return grids


def last_convolution(model: nn.Module, spatial_size: Sequence[int] | None = None) -> str:
    """The name of the last ``nn.Conv3d`` of the network's ``features`` (of the whole network
    when it has no ``features``) whose output grid, for an input of ``spatial_size``, is at least
    2 voxels along every axis: the last layer that can still tell places apart
    (``"network.features.14"``, a 3x4x3 grid, for AlexNet3D at 72x88x72). Without
    ``spatial_size``, the last one.

    Raises:
        LoesError: when the model has no 3D convolution, or none with such a grid.
    """
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv3d)]
    names = [n for n in names if ".features." in f".{n}"] or names
    if not names:
        raise LoesError("the network has no 3D convolution for GradCAM; choose another method.")
    if spatial_size is None:
        return names[-1]
    grids = _grids(model, spatial_size)
    spatial = [n for n in names if min(grids.get(n, (0,))) >= 2]
    if not spatial:
        raise LoesError(
            f"no 3D convolution of the network keeps a grid of 2 voxels per axis at "
            f"{tuple(spatial_size)}; GradCAM cannot localise there: choose another method."
        )
    return spatial[-1]


def check_layer(model: nn.Module, layer: str | None, spatial_size: Sequence[int]) -> str:
    """The layer GradCAM weights in ``model`` (``layer``, or :func:`last_convolution`).

    Raises:
        LoesError: naming the network's 3D convolutions and their grids when ``layer`` is not
            one of its modules.
    """
    if layer is None:
        return last_convolution(model, spatial_size)
    module = dict(model.named_modules()).get(layer) if layer else None
    if not isinstance(module, nn.Conv3d):
        grids = _grids(model, spatial_size)
        listed = ", ".join(f"{n} ({'x'.join(map(str, g))})" for n, g in grids.items())
        raise LoesError(
            f"the network has no 3D convolution {layer!r}; its 3D convolutions are {listed}."
        )
    return layer


def _occlusion_overlap(size: int, stride: int) -> float:
    """MONAI's sliding-window ``overlap`` that steps ``stride`` voxels over a ``size`` cube
    (``int(size * (1 - overlap))`` is the step there; the small margin keeps it from rounding
    down)."""
    return max(0.0, (size - stride - 0.1) / size)


def occlusion_windows(shape: Sequence[int], settings: SaliencySettings) -> int:
    """The number of occluded copies (forward passes) one scan of spatial ``shape`` costs."""
    size = tuple(min(settings.occlusion_size, s) for s in shape)
    step = tuple(min(settings.occlusion_stride, s) for s in size)
    return len(dense_patch_slices(tuple(shape), size, step))


def saliency_map(
    model: nn.Module,
    image: torch.Tensor,
    method: str,
    settings: SaliencySettings | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """The positive saliency map of one scan for ``model``'s prediction.

    Args:
        model: a network returning (B,) scores (a :class:`~loes.models.LoesModel`); run in eval
            mode (BatchNorm uses its running statistics), and left in the mode it came in.
        image: (1, 1, D, H, W) model input, on the model's device.
        method: one of :data:`SALIENCY_METHODS`.
        settings: layer, SmoothGrad and occlusion settings (default: :class:`SaliencySettings`).
        seed: seed of SmoothGrad's noise, so a scan's map does not depend on what came before.

    Returns:
        (D, H, W) float32 map, >= 0, on the input's grid (CPU). Units: see the module table.

    Raises:
        LoesError: for an unknown method or layer, or an image that is not one scan.
    """
    if method not in SALIENCY_METHODS:
        raise LoesError(f"unknown method {method!r}; choose one of {', '.join(SALIENCY_METHODS)}.")
    if image.ndim != 5 or image.shape[:2] != (1, 1):
        raise LoesError(f"expected one scan of shape (1, 1, D, H, W), got {tuple(image.shape)}.")
    settings = settings or SaliencySettings()
    training = model.training
    net = _Logits(model).eval()  # MONAI restores the wrapper's mode, and so its children's
    image = image.detach().float().contiguous()  # a preprocessed scan may come transposed
    if method in ("gradcam", "gradcampp"):
        explainer = GradCAM if method == "gradcam" else GradCAMpp
        layer = check_layer(model, settings.layer, image.shape[2:])
        cam = explainer(net, target_layers=f"model.{layer}", postprocessing=_identity)
        result = cam(image)
    elif method == "vanillagrad":
        result = VanillaGrad(net)(image.clone()).abs()
    elif method == "smoothgrad":
        smooth = _SeededSmoothGrad(
            net,
            seed=seed,
            stdev_spread=settings.smoothgrad_noise,
            n_samples=settings.smoothgrad_samples,
            magnitude=True,
            verbose=False,
        )
        # MONAI returns sqrt(sum g^2) / n; times sqrt(n): the root mean square gradient
        result = smooth(image) * settings.smoothgrad_samples**0.5
    else:
        size = settings.occlusion_size
        occlusion = OcclusionSensitivity(
            net,
            mask_size=size,
            n_batch=settings.occlusion_batch,
            verbose=False,
            overlap=_occlusion_overlap(size, settings.occlusion_stride),
            activate=False,
        )
        with torch.no_grad(), warnings.catch_warnings():
            # MONAI indexes a MetaTensor once per window, each time with a UserWarning
            warnings.simplefilter("ignore", UserWarning)
            occluded, _ = occlusion(image)  # (1, 1, D, H, W): the score with each cube blurred
            result = net(image)[0, 0] - occluded[0, 0]
    model.train(training)
    return result.detach().float().reshape(image.shape[2:]).cpu().clamp(min=0.0)


class _SeededSmoothGrad(SmoothGrad):
    """MONAI's ``SmoothGrad`` with its noise drawn on the CPU, from a generator of its own
    seeded with ``seed``, then moved to the scan's device: the same noise, so the same map
    within float tolerance, on a CPU and on a GPU (whose rows ``loes explain`` reuses across
    devices), and no global random state drawn from or reseeded. MONAI draws it on the
    scan's device from the global generator of that device. The noise is the one
    ``torch.manual_seed(seed)`` gives MONAI's on a CPU, so maps made before stay valid."""

    def __init__(self, model: nn.Module, seed: int, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.seed = seed

    def __call__(self, x: torch.Tensor, index=None, **kwargs) -> torch.Tensor:
        # MONAI's SmoothGrad.__call__ (monai/visualize/gradient_based.py, 1.6) but the noise
        generator = torch.Generator().manual_seed(self.seed)
        stdev = (self.stdev_spread * (x.max() - x.min())).item()
        total = torch.zeros_like(x)
        for _ in self.range(self.n_samples):
            noise = torch.normal(0.0, stdev, size=tuple(x.shape), generator=generator)
            grad = self.get_grad((x + noise.to(x.device)).detach(), index, **kwargs)
            total += (grad * grad) if self.magnitude else grad
        if self.magnitude:
            total = total**0.5
        return total / self.n_samples


def _identity(x: torch.Tensor) -> torch.Tensor:
    """Keep CAM maps in their own units (MONAI rescales each to [0, 1] by default)."""
    return x


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised (``reset_parameters``, seeded; a
    BatchNorm's running statistics too), buffers such as the score scaling kept: the cascade's
    last step of Adebayo et al. 2018's model randomisation test.

    The weights are drawn on the CPU, from its generator alone (seeded from ``seed``, its state
    restored afterwards; no CUDA generator is touched), and the copy is then put on the
    model's device: the same weights, so the same maps, on a CPU and on a GPU."""
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    copied = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        # a stream of its own: torch.manual_seed(seed) would redraw a model built after it
        # (and reseed every CUDA generator)
        torch.default_generator.manual_seed(
            int(np.random.SeedSequence([seed, 2018]).generate_state(1)[0])
        )
        for module in copied.modules():
            if module is not copied and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return copied.to(device).eval()
