import torch
from torch import nn

from loes.models import SFCN


def test_sfcn_follows_peng_et_al_block_structure():
    model = SFCN()
    convs = [m for m in model.features if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 256, 64]
    assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 5 + [(1, 1, 1)]
    assert sum(isinstance(m, nn.MaxPool3d) for m in model.features) == 5


def test_sfcn_works_on_any_input_of_at_least_32_voxels():
    model = SFCN(dropout=0.0).eval()
    for size in [(32, 32, 32), (40, 48, 36)]:
        assert model(torch.randn(1, 1, *size)).shape == (1, 1)
