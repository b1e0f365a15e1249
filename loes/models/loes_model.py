"""A self-describing Loes-score model: a registered network, the scaling of its output to Loes
points, and the preprocessing its inputs need, saved and loaded as one checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from loes.io import atomic_path
from loes.models.registry import get_network

__all__ = ["LoesModel"]


class LoesModel(nn.Module):
    """A registered network that learns standardised scores and returns Loes points.

    The network's single output is ``score * score_std + score_mean`` (the training scores'
    mean and SD, kept as buffers), so losses can work on standardised scores while callers
    see points on the 0-34 scale. The object knows how to rebuild itself: :meth:`save` writes
    the network's registry name and arguments, the input size and the preprocessing settings
    (arguments of :func:`loes.transforms.preprocessing`) beside the weights, and :meth:`load`
    reads them back with ``torch.load(weights_only=True)``.

    Args:
        network: name in :mod:`loes.models`' registry (``"alexnet3d"``).
        spatial_size: input size in voxels, (D, H, W).
        network_kwargs: further arguments of the network (``{"dropout": 0.3}``).
        preprocessing: arguments of :func:`loes.transforms.preprocessing` that turn a NIfTI
            file into this model's input.
        score_mean, score_std: the training scores' mean and SD, in Loes points.

    Raises:
        ValueError: for an unknown network or a size it cannot take (from the registry).

    Examples::

        >>> model = LoesModel("alexnet3d", (72, 88, 72), score_mean=4.3, score_std=5.2)
        >>> model(torch.zeros(2, 1, 72, 88, 72)).shape
        torch.Size([2])
        >>> model.save("best.pt", epoch=3)  # doctest: +SKIP
        >>> model, extra = LoesModel.load("best.pt")  # doctest: +SKIP
    """

    def __init__(
        self,
        network: str,
        spatial_size: tuple[int, int, int],
        network_kwargs: dict[str, Any] | None = None,
        preprocessing: dict[str, Any] | None = None,
        score_mean: float = 0.0,
        score_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.spec = {
            "network": network,
            "spatial_size": [int(s) for s in spatial_size],
            "network_kwargs": dict(network_kwargs or {}),
            "preprocessing": dict(preprocessing or {}),
        }
        self.network = get_network(network, tuple(spatial_size), **self.spec["network_kwargs"])
        self.register_buffer("mean", torch.tensor(float(score_mean)))
        self.register_buffer("std", torch.tensor(float(score_std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) images -> (B,) scores in Loes points, not clipped."""
        return self.network(x)[:, 0] * self.std + self.mean

    def preprocessing(self):
        """The MONAI ``Compose`` that turns ``{"image": path}`` into this model's input."""
        from loes.transforms import preprocessing

        return preprocessing(keys="image", **self.spec["preprocessing"])

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """Write the description, the weights (``model``) and ``extra`` entries atomically.

        ``extra`` must hold what ``torch.load(weights_only=True)`` can read: tensors, numbers,
        strings and containers of them.
        """
        with atomic_path(path) as tmp:
            torch.save({"spec": self.spec, "model": self.state_dict(), **extra}, tmp)

    @classmethod
    def load(
        cls, path: str | os.PathLike, spec: dict[str, Any] | None = None
    ) -> tuple[LoesModel, dict[str, Any]]:
        """The model saved at ``path`` (on the CPU) and the checkpoint's other entries.

        ``spec`` describes the model when the checkpoint does not (those written before
        models described themselves); a description in the checkpoint wins.

        Raises:
            ValueError: when neither the checkpoint nor ``spec`` describes the model.
        """
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
        spec = checkpoint.pop("spec", None) or spec
        if spec is None:
            raise ValueError(
                f"{path} holds weights without the description of their model (written by an "
                "older loes); load it through its run folder, which holds that description."
            )
        model = cls(**spec)
        model.load_state_dict(checkpoint.pop("model"))
        return model, checkpoint
