from pathlib import Path

import pytest
import torch
from torch import nn

from loes.models import AlexNet3D
from loes.models.alexnet3d import MIN_SPATIAL_SIZE

# The module tree of ../shared/seed/alexnet3d-seed.md. Newer PyTorch also prints BatchNorm's
# `bias=True`, which the comparison removes.
SEED_TREE = """\
AlexNet3D(
  (features): Sequential(
    (0): Conv3d(1, 64, kernel_size=(5, 5, 5), stride=(2, 2, 2))
    (1): BatchNorm3d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (2): ReLU(inplace=True)
    (3): MaxPool3d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)
    (4): Conv3d(64, 128, kernel_size=(3, 3, 3), stride=(1, 1, 1))
    (5): BatchNorm3d(128, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (6): ReLU(inplace=True)
    (7): MaxPool3d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)
    (8): Conv3d(128, 192, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
    (9): BatchNorm3d(192, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (10): ReLU(inplace=True)
    (11): Conv3d(192, 192, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
    (12): BatchNorm3d(192, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (13): ReLU(inplace=True)
    (14): Conv3d(192, 128, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
    (15): BatchNorm3d(128, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    (16): ReLU(inplace=True)
    (17): MaxPool3d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)
  )
  (classifier): Sequential(
    (0): Dropout(p=0.5, inplace=False)
    (1): Linear(in_features=4096, out_features=64, bias=True)
    (2): ReLU(inplace=True)
    (3): Dropout(p=0.5, inplace=False)
    (4): Linear(in_features=64, out_features=1, bias=True)
  )
)"""

SEED_FILE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "alexnet3d-seed.md"


def _printed_lines() -> list[str]:
    return [line.replace(", bias=True, ", ", ") for line in str(AlexNet3D(4096)).splitlines()]


def test_print_matches_seed_tree_line_for_line():
    assert _printed_lines() == SEED_TREE.splitlines()


@pytest.mark.skipif(not SEED_FILE.exists(), reason="shared/seed not beside the checkout")
def test_seed_tree_is_the_shared_seed():
    seed_lines = [line.strip() for line in SEED_FILE.read_text().splitlines()]
    start = seed_lines.index("AlexNet3D(")
    # The seed file leaves out the two closing parentheses of the tree.
    assert seed_lines[start : start + len(SEED_TREE.splitlines()) - 2] == [
        line.strip() for line in SEED_TREE.splitlines()[:-2]
    ]


@pytest.mark.parametrize(
    ("spatial_size", "in_features"),
    [((176, 256, 256), 4096), ((197, 233, 189), 4608), ((160, 192, 160), 1536)],
)
def test_in_features_derived_from_input_shape(spatial_size, in_features):
    assert AlexNet3D.feature_size(spatial_size) == in_features
    assert AlexNet3D.for_input_shape(spatial_size).classifier[1].in_features == in_features


def test_minimum_size_is_exactly_the_smallest_that_works():
    size = (MIN_SPATIAL_SIZE,) * 3
    assert AlexNet3D.feature_size(size) == 128
    model = AlexNet3D.for_input_shape(size).eval()
    assert model(torch.zeros(2, 1, *size)).shape == (2, 1)
    with pytest.raises(ValueError, match=f"at least {MIN_SPATIAL_SIZE} voxels"):
        AlexNet3D.for_input_shape((MIN_SPATIAL_SIZE - 1, 100, 100))


def test_wrong_input_shape_names_the_size_to_build_with():
    model = AlexNet3D.for_input_shape((69, 69, 69)).eval()
    with pytest.raises(ValueError, match=r"for_input_shape\(\(150, 150, 150\)\)"):
        model(torch.zeros(1, 1, 150, 150, 150))


@pytest.mark.parametrize("in_features", [0, -128, 100])
def test_in_features_must_be_a_multiple_of_the_channels(in_features):
    with pytest.raises(ValueError, match="multiple of 128"):
        AlexNet3D(in_features)


def test_dropout_is_a_parameter():
    model = AlexNet3D(128, dropout=0.2)
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.2, 0.2]
    with pytest.raises(ValueError, match="dropout"):
        AlexNet3D(128, dropout=1.0)


def test_conv3d_gets_kaiming_fan_out_and_batchnorm_unit_zero():
    torch.manual_seed(0)
    model = AlexNet3D(4096)
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            fan_out = module.out_channels * module.weight[0, 0].numel()
            expected_std = (2.0 / fan_out) ** 0.5
            assert module.weight.std().item() == pytest.approx(expected_std, rel=0.1)
            assert torch.count_nonzero(module.bias) == 0  # constants set, not computed: exact
        elif isinstance(module, nn.BatchNorm3d):
            assert torch.all(module.weight == 1)
            assert torch.all(module.bias == 0)


def test_features_reachable_for_saliency_hooks():
    model = AlexNet3D.for_input_shape((69, 69, 69)).eval()
    captured = []
    model.features[-1].register_forward_hook(lambda m, i, o: captured.append(o.shape))
    model(torch.zeros(1, 1, 69, 69, 69))
    assert captured == [torch.Size([1, 128, 1, 1, 1])]


def test_one_optimiser_step_lowers_the_loss():
    torch.manual_seed(0)
    model = AlexNet3D.for_input_shape((69, 69, 69), dropout=0.0).train()
    images = torch.randn(4, 1, 69, 69, 69)
    targets = torch.tensor([[0.0], [3.0], [9.0], [15.0]])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        optimiser.zero_grad()
        loss = nn.functional.mse_loss(model(images), targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[1] < losses[0]
