import pytest
import torch
from monai.bundle import ConfigParser
from torch import nn

from loes.models import (
    SFCN,
    AlexNet3D,
    available_networks,
    get_network,
    register_network,
    summarize_network,
)
from loes.models import registry as registry_module

EXPECTED = {"alexnet3d", "densenet121", "regressor", "resnet18", "resnet50", "sfcn"}


def test_all_networks_registered():
    assert set(available_networks()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize(("in_channels", "out_channels"), [(1, 1), (2, 3)])
def test_every_network_maps_input_to_scores(name, in_channels, out_channels):
    spatial_size = (69, 72, 70)
    model = get_network(
        name, spatial_size, in_channels=in_channels, out_channels=out_channels
    ).eval()
    with torch.no_grad():
        output = model(torch.randn(2, in_channels, *spatial_size))
    assert output.shape == (2, out_channels)
    assert torch.isfinite(output).all()


def test_names_are_case_insensitive():
    assert isinstance(get_network("AlexNet3D", (69, 69, 69)), AlexNet3D)
    assert isinstance(get_network("SFCN", (64, 64, 64)), SFCN)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown network 'vgg'.*alexnet3d.*sfcn"):
        get_network("vgg", (69, 69, 69))


def test_bad_spatial_size_is_rejected():
    with pytest.raises(ValueError, match="three positive sizes"):
        get_network("sfcn", (64, 64))
    with pytest.raises(ValueError, match=">= 32"):
        get_network("sfcn", (16, 64, 64))


def test_register_network_adds_a_factory_and_refuses_duplicates(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @register_network("Tiny")
    def tiny(spatial_size, in_channels=1, out_channels=1):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 8, out_channels))

    assert "tiny" in available_networks()
    assert get_network("TINY", (2, 2, 2))(torch.zeros(3, 1, 2, 2, 2)).shape == (3, 1)
    with pytest.raises(ValueError, match="already registered"):
        register_network("tiny")(tiny)


def test_bundle_config_can_build_alexnet3d():
    parser = ConfigParser(
        {"network": {"_target_": "loes.models.AlexNet3D", "in_features": 1536, "dropout": 0.3}}
    )
    model = parser.get_parsed_content("network")
    assert isinstance(model, AlexNet3D)
    assert model.classifier[1].in_features == 1536
    assert model.classifier[0].p == 0.3


def test_bundle_config_can_build_through_the_registry():
    parser = ConfigParser(
        {
            "network": {
                "_target_": "loes.models.get_network",
                "name": "sfcn",
                "spatial_size": [64, 64, 64],
            }
        }
    )
    assert isinstance(parser.get_parsed_content("network"), SFCN)


@pytest.mark.parametrize(
    ("name", "feature_size"),
    [("alexnet3d", 1536), ("densenet121", 1024), ("resnet18", 512), ("sfcn", 64)],
)
def test_summary_reports_feature_size_and_output(name, feature_size):
    summary = summarize_network(name, (160, 192, 160), batch_size=2)
    model = get_network(name, (160, 192, 160))
    assert summary.feature_size == feature_size
    assert summary.output_shape == (2, 1)
    assert summary.parameters == sum(p.numel() for p in model.parameters())


def test_the_registered_alexnet3d_has_its_own_dropout():
    """The pipeline's AlexNet3D drops 0.2 of its head's units (issue 16); the class keeps the
    lab seed's 0.5, and an explicit rate (``model.dropout``) wins."""

    def rates(model):
        return [m.p for m in model.modules() if isinstance(m, nn.Dropout)]

    assert rates(get_network("alexnet3d", (72, 88, 72))) == [0.2, 0.2]
    assert rates(get_network("alexnet3d", (72, 88, 72), dropout=0.5)) == [0.5, 0.5]
    assert rates(AlexNet3D(128)) == [0.5, 0.5]
