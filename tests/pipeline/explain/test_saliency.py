"""Saliency maps from monai.visualize on a Loes model: shapes and signs, locality on a phantom
network whose answer is known, the occlusion cost, the randomised copy and bad arguments."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from loes.errors import LoesError
from loes.models import LoesModel
from loes.pipeline.explain.saliency import (
    SALIENCY_METHODS,
    SaliencySettings,
    last_convolution,
    occlusion_windows,
    randomized,
    saliency_map,
)

SHAPE = (16, 20, 16)
BOX = (slice(4, 8), slice(10, 14), slice(6, 10))


class BoxNetwork(nn.Module):
    """Scores the summed intensity of one box of the image (through a 1x1x1 convolution), so
    only the box matters; counts the scans it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return self.conv(x)[(slice(None), 0, *BOX)].sum(dim=(1, 2, 3))


@pytest.fixture
def image():
    torch.manual_seed(0)
    return torch.rand(1, 1, *SHAPE) + 0.5


@pytest.fixture(scope="module")
def loes_model():
    torch.manual_seed(0)
    return LoesModel("sfcn", (32, 40, 32), score_mean=5.0, score_std=4.0).eval()


@pytest.mark.parametrize("method", SALIENCY_METHODS)
def test_every_method_gives_a_positive_map_on_the_input_grid(method, loes_model):
    torch.manual_seed(1)
    x = torch.randn(1, 1, 32, 40, 32)
    settings = SaliencySettings(smoothgrad_samples=2, occlusion_size=16, occlusion_stride=16)
    result = saliency_map(loes_model, x, method, settings)
    assert result.shape == (32, 40, 32)
    assert result.dtype == torch.float32
    assert (result >= 0).all()
    assert not loes_model.training


@pytest.mark.parametrize("method", ["vanillagrad", "smoothgrad"])
def test_gradients_are_exactly_the_box(method, image):
    result = saliency_map(BoxNetwork(), image, method, SaliencySettings(smoothgrad_samples=3))
    inside = torch.zeros(SHAPE, dtype=torch.bool)
    inside[BOX] = True
    np.testing.assert_allclose(result[inside].numpy(), 1.0, rtol=1e-6)  # d score / d voxel
    assert (result[~inside] == 0).all()


def test_occlusion_is_where_the_box_is_and_counts_its_windows(image):
    network = BoxNetwork()
    settings = SaliencySettings(occlusion_size=4, occlusion_stride=2, occlusion_batch=7)
    result = saliency_map(network, image, "occlusion", settings)
    windows = occlusion_windows(SHAPE, settings)
    assert windows == 7 * 9 * 7  # (16 - 4) / 2 + 1 by (20 - 4) / 2 + 1 by ...
    assert network.seen == windows + 1  # each occluded copy, and the scan itself once
    peak = np.unravel_index(int(result.argmax()), SHAPE)
    assert all(s.start <= p < s.stop for p, s in zip(peak, BOX, strict=True))
    assert result[0:2, 0:2, 0:2].max() < 1e-4  # far from the box, occlusion changes nothing


def test_the_occlusion_stride_is_kept_when_monai_rounds_its_overlap():
    for size, stride in ((12, 5), (16, 8), (12, 6), (10, 3), (7, 7)):
        settings = SaliencySettings(occlusion_size=size, occlusion_stride=stride)
        per_axis = [(s - size) // stride + 1 + ((s - size) % stride > 0) for s in (72, 88, 72)]
        assert occlusion_windows((72, 88, 72), settings) == np.prod(per_axis), (size, stride)


def test_gradcam_weights_the_last_convolution_unless_told(loes_model, image):
    assert last_convolution(loes_model) == "network.features.20"  # not the classifier's
    # at 32x40x32 features.20 sees a 1x1x1 grid: the last one with a grid is features.16
    assert last_convolution(loes_model, (32, 40, 32)) == "network.features.16"
    assert last_convolution(LoesModel("alexnet3d", (72, 88, 72))) == "network.features.14"
    for name in ("network", "", "network.features.1"):  # a container, nothing, a BatchNorm
        with pytest.raises(LoesError, match=r"has no 3D convolution .*; its 3D convolutions are"):
            saliency_map(
                loes_model, torch.zeros(1, 1, 32, 40, 32), "gradcam", SaliencySettings(name)
            )
    with pytest.raises(LoesError, match=r"no 3D convolution 'network\.nope'; its 3D"):
        saliency_map(
            loes_model, torch.zeros(1, 1, 32, 40, 32), "gradcam", SaliencySettings("network.nope")
        )
    with pytest.raises(LoesError, match="no 3D convolution"):
        last_convolution(nn.Linear(2, 1))


def test_smoothgrad_noise_follows_its_seed(loes_model):
    torch.manual_seed(1)
    x = torch.randn(1, 1, 32, 40, 32)
    settings = SaliencySettings(smoothgrad_samples=2)
    one = saliency_map(loes_model, x, "smoothgrad", settings, seed=5)
    torch.rand(10)  # whatever ran before
    torch.testing.assert_close(saliency_map(loes_model, x, "smoothgrad", settings, seed=5), one)
    assert not torch.equal(saliency_map(loes_model, x, "smoothgrad", settings, seed=6), one)


def test_smoothgrad_noise_is_monais_with_the_seeds_cpu_noise_and_leaves_the_rng_alone(loes_model):
    """The map is MONAI's SmoothGrad's with the noise torch.manual_seed(seed) gives on a CPU
    (maps saved before stay valid), and no global random state moves."""
    from monai.visualize import SmoothGrad

    from loes.pipeline.explain.saliency import _Logits

    torch.manual_seed(1)
    x = torch.randn(1, 1, 32, 40, 32)
    state = torch.get_rng_state()
    mine = saliency_map(loes_model, x, "smoothgrad", SaliencySettings(smoothgrad_samples=3), 7)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    smooth = SmoothGrad(_Logits(loes_model).eval(), n_samples=3, magnitude=True, verbose=False)
    monai = (smooth(x) * 3**0.5).detach().reshape(x.shape[2:]).clamp(min=0.0)
    torch.testing.assert_close(mine, monai, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_smoothgrad_gives_the_cpus_map_on_a_gpu(loes_model):
    """The noise is drawn on the CPU whatever the device (MONAI draws it from the CUDA
    generator there: another map for the same seed), and no CUDA generator moves."""
    torch.manual_seed(1)
    x = torch.randn(1, 1, 32, 40, 32)
    settings = SaliencySettings(smoothgrad_samples=3)
    states = torch.cuda.get_rng_state_all()
    on_cpu = saliency_map(loes_model, x, "smoothgrad", settings, seed=2)
    on_gpu = saliency_map(copy.deepcopy(loes_model).cuda(), x.cuda(), "smoothgrad", settings, 2)
    assert all(map(torch.equal, torch.cuda.get_rng_state_all(), states))
    scale = on_cpu.abs().max().item()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=0, atol=1e-3 * scale)


def test_the_randomised_copy_has_new_weights_the_same_scaling_and_a_seed(loes_model):
    before = {k: v.clone() for k, v in loes_model.state_dict().items()}
    one, again, other = (
        randomized(loes_model, 0),
        randomized(loes_model, 0),
        randomized(loes_model, 1),
    )
    for key, value in loes_model.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the original is untouched
    weights = [k for k, v in before.items() if k.endswith("weight") and v.ndim > 1]
    assert weights
    assert all(not torch.equal(one.state_dict()[k], before[k]) for k in weights)
    assert all(torch.equal(one.state_dict()[k], again.state_dict()[k]) for k in weights)
    assert any(not torch.equal(one.state_dict()[k], other.state_dict()[k]) for k in weights)
    assert one.mean == loes_model.mean
    assert one.std == loes_model.std
    assert not one.training


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_the_randomised_weights_are_drawn_on_the_cpu_whatever_the_device(loes_model, device):
    """The sanity check's weights come from the CPU generator, so a map made on a GPU and one
    made on a CPU (whose rows explain reuses across devices) use the same weights; the copy
    lives on the model's device, and every random state is as it was."""
    states = torch.get_rng_state(), torch.cuda.get_rng_state_all() if device == "cuda" else []
    on_cpu = randomized(loes_model, 4)
    on_device = randomized(copy.deepcopy(loes_model).to(device), 4)
    assert torch.equal(torch.get_rng_state(), states[0])
    if device == "cuda":
        assert all(map(torch.equal, torch.cuda.get_rng_state_all(), states[1]))
    for key, value in on_cpu.state_dict().items():
        assert on_device.state_dict()[key].device.type == device
        assert torch.equal(on_device.state_dict()[key].cpu(), value), key


def test_bad_arguments_are_refused(loes_model):
    x = torch.zeros(1, 1, 32, 40, 32)
    with pytest.raises(LoesError, match="unknown method 'lime'; choose one of gradcam"):
        saliency_map(loes_model, x, "lime")
    with pytest.raises(LoesError, match=r"one scan of shape \(1, 1, D, H, W\), got \(2, 1"):
        saliency_map(loes_model, torch.zeros(2, 1, 32, 40, 32), "gradcam")
    with pytest.raises(LoesError, match="stride must be between 1 and the cube's size"):
        SaliencySettings(occlusion_size=4, occlusion_stride=5)
    with pytest.raises(LoesError, match="smoothgrad samples must be at least 1"):
        SaliencySettings(smoothgrad_samples=0)
