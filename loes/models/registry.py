"""A name -> network registry so configurations can say ``model: alexnet3d``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monai.networks import nets
from torch import nn

from loes.models.alexnet3d import AlexNet3D
from loes.models.sfcn import SFCN

__all__ = ["available_networks", "get_network", "register_network"]

NetworkFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, NetworkFactory] = {}


def register_network(name: str) -> Callable[[NetworkFactory], NetworkFactory]:
    """Register ``factory(spatial_size, in_channels, out_channels, **kwargs) -> nn.Module``.

    Examples::

        >>> @register_network("tiny")
        ... def tiny(spatial_size, in_channels=1, out_channels=1):
        ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(out_channels))
    """
    key = name.lower()

    def decorator(factory: NetworkFactory) -> NetworkFactory:
        if key in _REGISTRY:
            raise ValueError(f"a network named {key!r} is already registered.")
        _REGISTRY[key] = factory
        return factory

    return decorator


def available_networks() -> list[str]:
    """Registered network names, sorted."""
    return sorted(_REGISTRY)


def get_network(
    name: str,
    spatial_size: Sequence[int],
    in_channels: int = 1,
    out_channels: int = 1,
    **kwargs,
) -> nn.Module:
    """Build the network ``name`` (case-insensitive) for inputs (B, in_channels, *spatial_size)."""
    factory = _REGISTRY.get(name.lower())
    if factory is None:
        raise ValueError(f"unknown network {name!r}; available: {', '.join(available_networks())}.")
    spatial_size = tuple(int(s) for s in spatial_size)
    if len(spatial_size) != 3 or min(spatial_size) < 1:
        raise ValueError(
            f"spatial_size must be three positive sizes (D, H, W), got {spatial_size}."
        )
    return factory(spatial_size, in_channels=in_channels, out_channels=out_channels, **kwargs)


def _no_dropout(name: str, dropout: float | None) -> None:
    if dropout:
        raise ValueError(f"{name} has no dropout layer; leave dropout unset.")


def _resnet_options(in_channels: int, out_channels: int, kwargs: dict) -> dict:
    # MONAI's 3D ResNets default to a stride-1 first convolution (MedicalNet uses 2): at brain
    # sizes that is about 8x the compute for little gain, so the standard stride 2 is the default
    return {
        "spatial_dims": 3,
        "n_input_channels": in_channels,
        "num_classes": out_channels,
        "conv1_t_stride": 2,
        **kwargs,
    }


#: dropout of the registered AlexNet3D's head (the class keeps the lab seed's 0.5): on the
#: synthetic CPU main job (configs/cpu.yaml, 10 epochs) 0.5 lost to the ridge baseline, and
#: 0.2, chosen on seeds 2 and 3 and confirmed once on seeds 0 and 1, beat it (issue 16)
ALEXNET3D_DROPOUT = 0.2


@register_network("alexnet3d")
def _alexnet3d(spatial_size, in_channels=1, out_channels=1, dropout=ALEXNET3D_DROPOUT):
    return AlexNet3D.for_input_shape(
        spatial_size, dropout=dropout, in_channels=in_channels, out_channels=out_channels
    )


@register_network("sfcn")
def _sfcn(spatial_size, in_channels=1, out_channels=1, **kwargs):
    if min(spatial_size) < 32:
        raise ValueError(f"SFCN's five 2x poolings need every axis >= 32, got {spatial_size}.")
    return SFCN(in_channels=in_channels, out_channels=out_channels, **kwargs)


@register_network("densenet121")
def _densenet121(spatial_size, in_channels=1, out_channels=1, dropout=0.0, **kwargs):
    return nets.DenseNet121(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        dropout_prob=dropout,
        **kwargs,
    )


@register_network("resnet18")
def _resnet18(spatial_size, in_channels=1, out_channels=1, dropout=None, **kwargs):
    _no_dropout("resnet18", dropout)
    return nets.resnet18(**_resnet_options(in_channels, out_channels, kwargs))


@register_network("resnet50")
def _resnet50(spatial_size, in_channels=1, out_channels=1, dropout=None, **kwargs):
    _no_dropout("resnet50", dropout)
    return nets.resnet50(**_resnet_options(in_channels, out_channels, kwargs))


@register_network("regressor")
def _regressor(spatial_size, in_channels=1, out_channels=1, dropout=None, **kwargs):
    options = {
        "channels": (16, 32, 64, 128, 256),
        "strides": (2, 2, 2, 2),
        "dropout": dropout,
        **kwargs,
    }
    return nets.Regressor(
        in_shape=(in_channels, *spatial_size), out_shape=(out_channels,), **options
    )
