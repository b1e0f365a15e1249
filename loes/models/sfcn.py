"""SFCN: the Simple Fully Convolutional Network of Peng et al. 2021 (Medical Image Analysis)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SFCN"]


class SFCN(nn.Module):
    """Lightweight fully convolutional 3D regressor (brain-age MAE 2.14 y on UK Biobank).

    Five blocks of conv3-BN-maxpool2-ReLU, a conv1-BN-ReLU block, global average pooling,
    dropout and a 1x1x1 convolution as the regression head. The original head predicts 40
    age bins with a KL loss; here it predicts ``out_channels`` scores directly. Global
    pooling makes it work on any input with every axis at least 32 voxels.

    Examples::

        >>> SFCN()(torch.zeros(2, 1, 64, 64, 64)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128, 256, 256, 64),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(channels):
            last = i == len(channels) - 1
            blocks += [
                nn.Conv3d(previous, width, kernel_size=1 if last else 3, padding=0 if last else 1),
                nn.BatchNorm3d(width),
            ]
            if not last:
                blocks.append(nn.MaxPool3d(2, stride=2))
            blocks.append(nn.ReLU(inplace=True))
            previous = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool3d(1),
            nn.Dropout(dropout),
            nn.Conv3d(previous, out_channels, kernel_size=1),
            nn.Flatten(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, out_channels)."""
        return self.classifier(self.features(x))
