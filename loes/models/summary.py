"""Shape and size summaries of registered networks, computed without allocating memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from loes.models.registry import get_network

__all__ = ["NetworkSummary", "summarize_network"]


@dataclass(frozen=True)
class NetworkSummary:
    """A network's name, parameter count, flattened feature size and output shape."""

    name: str
    parameters: int
    feature_size: int
    output_shape: tuple[int, ...]


def _head(model: nn.Module) -> nn.Module:
    """The layer whose input is the flattened feature vector: the first Linear, else the last
    convolution (fully convolutional networks)."""
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linear[0] if linear else [m for m in model.modules() if isinstance(m, nn.Conv3d)][-1]


def summarize_network(
    name: str, spatial_size: Sequence[int], in_channels: int = 1, batch_size: int = 1
) -> NetworkSummary:
    """Parameter count, head input size and output shape of ``name`` for ``spatial_size``.

    Runs on PyTorch's ``meta`` device, so even full-resolution inputs cost no memory.
    """
    with torch.device("meta"):
        model = get_network(name, spatial_size, in_channels=in_channels).eval()
        seen: list[int] = []
        hook = _head(model).register_forward_hook(lambda m, i, o: seen.append(i[0][0].numel()))
        output = model(torch.empty(batch_size, in_channels, *spatial_size))
        hook.remove()
    return NetworkSummary(
        name=name,
        parameters=sum(p.numel() for p in model.parameters()),
        feature_size=seen[-1],
        output_shape=tuple(output.shape),
    )
