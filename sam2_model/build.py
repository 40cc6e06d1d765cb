"""Building models by configuration name."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor

from .checkpoint import load_checkpoint
from .config import SAM2Config, get_config
from .modeling.sam2 import SAM2Model

__all__ = ["build_sam2", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but no CUDA GPU is available (use 'cpu' or 'auto')")
    return dev


def build_sam2(
    name: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | os.PathLike | Mapping[str, Tensor] | None = None,
    *,
    device: str | torch.device = "cpu",
    image_size: int | None = None,
) -> SAM2Model:
    """Build a SAM 2 model in eval mode.

    Args:
        name: a registered config name (see :func:`sam2_model.config_names`) or a config.
        checkpoint: official checkpoint file or state dict; ``None`` keeps random weights.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"``.
        image_size: input size override (multiple of 32; the official models use 1024).
    """
    config = get_config(name, image_size)
    dev = resolve_device(device)
    model = SAM2Model(config)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.to(dev).eval()
