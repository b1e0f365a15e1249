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
        """(B, 1, D, H, W) images -> (B,) scores in Loes points, not clipped: float32 (float64
        for a float64 model).

        The network's output is scaled in float32 at least, whatever autocast computed it in:
        bf16 has 8 significant bits, so a score scaled in it would be rounded to 1/16 point
        between 8 and 16 and to 1/8 between 16 and 32.
        """
        out = self.network(x)[:, 0]
        out = out.to(torch.promote_types(out.dtype, torch.float32))
        return out * self.std + self.mean

    def preprocessing(self):
        """The MONAI ``Compose`` that turns ``{"image": path}`` into this model's input."""
        from loes.transforms import preprocessing

        return preprocessing(keys="image", **self.spec["preprocessing"])

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """Write the description, the weights (``model``) and ``extra`` entries atomically.

        ``extra`` must hold what ``torch.load(weights_only=True)`` can read: tensors, numbers,
        strings and containers of them. Every tensor is written as a CPU tensor, whatever
        device the model is on, so that a checkpoint written on a GPU loads on any machine
        with a plain ``torch.load(path, weights_only=True)``.
        """
        checkpoint = _on_cpu({"spec": self.spec, "model": self.state_dict(), **extra})
        # through an open file, so the archive's inner name is torch's fixed "archive", not the
        # temporary file's random name: the same weights give the same bytes
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            torch.save(checkpoint, file)

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


def _on_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists and tuples) copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value
