"""Pure conversions between images/prompts in pixels and the model's input space.

Frames are resized to ``S x S`` (aspect ratio not kept) with PIL's bicubic filter, exactly
as the official video loader does, scaled to [0, 1] and normalised with ImageNet
statistics. Point coordinates are scaled from the image's ``W, H`` to ``S``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .modeling.common import cached_table

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "logits_to_image",
    "mask_to_model",
    "normalize_image",
    "points_to_model",
    "preprocess_image",
    "resize_image",
    "resize_image_tensor",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[S, S, 3]`` uint8 (PIL bicubic, as the official loader)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def resize_image_tensor(image: Tensor, size: int) -> Tensor:
    """``[H, W, 3]`` uint8 tensor -> ``[S, S, 3]`` uint8 on the same device (a GPU).

    PIL's bicubic resize redone with tensor ops: its filter (``a = -0.5``, widened when
    shrinking), its two separable passes with uint8 rounding in between, in PIL's order
    (vertical first only when shrinking rows while enlarging columns). It differs from
    :func:`resize_image` by a grey level or two on a few pixels in 10,000.
    """
    h, w = image.shape[0], image.shape[1]
    if h == size and w == size:
        return image
    x = image.permute(2, 0, 1)[None].float()  # HWC -> 1CHW
    passes = [(h, size), (size, size)]  # columns, then rows
    if size < h and size > w:
        passes = [(size, w), (size, size)]
    for hw in passes:
        if tuple(x.shape[-2:]) != hw:
            x = F.interpolate(x, size=hw, mode="bicubic", align_corners=False, antialias=True)
            x = x.round_().clamp_(0, 255)  # PIL keeps 8 bits between passes
    return x[0].permute(1, 2, 0).to(torch.uint8)  # CHW -> HWC


def normalize_image(image: np.ndarray | Tensor, device: torch.device | str = "cpu") -> Tensor:
    """``[S, S, 3]`` uint8 (array, or tensor on any device) -> normalised ``[3, S, S]``
    float32 on ``device``."""
    if isinstance(image, Tensor):
        x = image.to(device)
    else:
        x = torch.tensor(image, device=device)  # a copy: the caller's array may be read-only
    x = (x.double() / 255.0).float().permute(2, 0, 1)  # HWC -> CHW; /255 in float64 like the loader
    mean, std = _imagenet_stats(str(x.device))
    return (x - mean) / std


@cached_table
def _imagenet_stats(device: str) -> tuple[Tensor, Tensor]:
    """ImageNet mean and std ``[3, 1, 1]`` on ``device``, made once (no copy per frame)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=device)[:, None, None]
    return mean, std


def preprocess_image(image: np.ndarray, size: int, device: torch.device | str = "cpu") -> Tensor:
    """RGB ``[H, W, 3]`` uint8 -> model input ``[1, 3, S, S]``."""
    return normalize_image(resize_image(image, size), device)[None]


def points_to_model(points: np.ndarray, image_hw: tuple[int, int], size: int, device: torch.device | str) -> Tensor:
    """Pixel coordinates ``[..., 2]`` (x, y) in an ``(H, W)`` image -> model input pixels."""
    h, w = image_hw
    pts = torch.as_tensor(np.asarray(points, dtype=np.float32), device=device)
    return pts / torch.tensor([w, h], device=device) * size


def mask_to_model(mask: np.ndarray, size: int, device: torch.device | str) -> Tensor:
    """Binary ``[H, W]`` mask -> binary ``[1, 1, S, S]`` float (antialiased resize, >= 0.5)."""
    m = torch.as_tensor(np.asarray(mask, dtype=bool), device=device)[None, None].float()
    if m.shape[-2:] == (size, size):
        return m
    m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (m >= 0.5).float()


def logits_to_image(logits: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Low-res logits ``[B, M, h, w]`` -> ``[B, M, H, W]`` (bilinear)."""
    if tuple(logits.shape[-2:]) == tuple(image_hw):
        return logits
    return F.interpolate(logits.float(), size=image_hw, mode="bilinear", align_corners=False)
