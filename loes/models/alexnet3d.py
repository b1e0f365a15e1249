"""AlexNet3D: the 3D AlexNet the Loes-score work started from (Abrol et al. 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AlexNet3D"]

_CHANNELS = 128  # channels of the last feature block


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _feature_extent(size: int) -> int:
    """Length of one spatial axis after ``features``; below 1 means the input is too small."""
    size = _conv_out(size, 5, 2)  # conv 5, stride 2
    size = _conv_out(size, 3, 3)  # pool 3
    size = _conv_out(size, 3)  # conv 3
    size = _conv_out(size, 3, 3)  # pool 3
    return _conv_out(size, 3, 3)  # three padded convs keep the size; pool 3


def _min_size() -> int:
    size = 1
    while _feature_extent(size) < 1:
        size += 1
    return size


MIN_SPATIAL_SIZE = _min_size()


class AlexNet3D(nn.Module):
    """3D AlexNet regressing one score from a single-channel volume.

    ``in_features`` is the flattened size of ``features``' output and depends on the input
    shape; build with :meth:`for_input_shape` rather than guessing it.

    Examples::

        >>> model = AlexNet3D.for_input_shape((176, 256, 256))
        >>> model.classifier[1].in_features
        4096
        >>> model(torch.zeros(2, 1, 176, 256, 256)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        in_features: int = 4096,
        dropout: float = 0.5,
        in_channels: int = 1,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        if in_features < 1 or in_features % _CHANNELS:
            raise ValueError(
                f"in_features must be a positive multiple of {_CHANNELS}, got {in_features}; "
                "use AlexNet3D.for_input_shape((D, H, W)) to derive it."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.in_features = in_features
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, 64, kernel_size=5, stride=2, padding=0),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=3, stride=3),
            nn.Conv3d(64, 128, kernel_size=3, stride=1, padding=0),
            nn.BatchNorm3d(128),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=3, stride=3),
            nn.Conv3d(128, 192, kernel_size=3, padding=1),
            nn.BatchNorm3d(192),
            nn.ReLU(inplace=True),
            nn.Conv3d(192, 192, kernel_size=3, padding=1),
            nn.BatchNorm3d(192),
            nn.ReLU(inplace=True),
            nn.Conv3d(192, _CHANNELS, kernel_size=3, padding=1),
            nn.BatchNorm3d(_CHANNELS),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=3, stride=3),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(in_features, 64),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(64, out_channels),
        )
        self.reset_parameters()

    @staticmethod
    def feature_size(spatial_size: Sequence[int]) -> int:
        """Flattened size of ``features``' output for a (D, H, W) input."""
        spatial_size = tuple(int(s) for s in spatial_size)
        if len(spatial_size) != 3:
            raise ValueError(f"spatial_size must be (D, H, W), got {spatial_size}.")
        extents = [_feature_extent(s) for s in spatial_size]
        if min(extents) < 1:
            raise ValueError(
                f"spatial_size {spatial_size} is too small for AlexNet3D's three stride-3 "
                f"poolings: every axis needs at least {MIN_SPATIAL_SIZE} voxels."
            )
        return _CHANNELS * extents[0] * extents[1] * extents[2]

    @classmethod
    def for_input_shape(cls, spatial_size: Sequence[int], **kwargs) -> AlexNet3D:
        """Build the network for inputs of shape (B, in_channels, *spatial_size)."""
        return cls(in_features=cls.feature_size(spatial_size), **kwargs)

    def reset_parameters(self) -> None:
        """Kaiming (fan_out, relu) for convolutions, unit/zero BatchNorm, small normal Linear."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, out_channels)."""
        features = self.features(x).flatten(1)
        if features.shape[1] != self.in_features:
            raise ValueError(
                f"AlexNet3D was built for {self.in_features} features but an input of spatial "
                f"size {tuple(x.shape[2:])} gives {features.shape[1]}; build it with "
                f"AlexNet3D.for_input_shape({tuple(x.shape[2:])})."
            )
        return self.classifier(features)
