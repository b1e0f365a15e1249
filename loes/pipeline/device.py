"""The device a run trains on, and the mixed precision it may use there."""

from __future__ import annotations

import contextlib

import torch

from loes.errors import LoesError

__all__ = ["autocast", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when PyTorch sees a GPU, else the CPU), ``"cpu"`` or ``"cuda"``.

    Raises:
        LoesError: when CUDA is asked for and PyTorch sees no GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LoesError("device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA (bf16 where supported, else fp16); nothing on other devices,
    where autocast without native low-precision units only slows training down."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
