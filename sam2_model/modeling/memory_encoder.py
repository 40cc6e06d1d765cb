"""Memory encoder: fuses a frame's image features with its (downsampled) mask into a compact
spatial memory of ``mem_dim`` channels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import LayerNorm2d, sine_position_encoding_2d

__all__ = ["CXBlock", "Fuser", "MaskDownSampler", "MemoryEncoder"]


class MaskDownSampler(nn.Module):
    """Strided 3x3 convs (each multiplying channels by stride^2) with LayerNorm and GELU,
    then a 1x1 projection: ``[B, 1, S, S] -> [B, C, S/total_stride, S/total_stride]``."""

    def __init__(self, embed_dim: int = 256, stride: int = 2, total_stride: int = 16) -> None:
        super().__init__()
        num_layers = round(math.log(total_stride, stride))
        if stride**num_layers != total_stride:
            raise ValueError("total_stride must be a power of stride")
        layers: list[nn.Module] = []
        chans = 1
        for _ in range(num_layers):
            out = chans * stride**2
            layers += [nn.Conv2d(chans, out, kernel_size=3, stride=stride, padding=1), LayerNorm2d(out), nn.GELU()]
            chans = out
        layers.append(nn.Conv2d(chans, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7, LayerNorm, pointwise MLP (x4, GELU), layer scale."""

    def __init__(self, dim: int, kernel_size: int = 7, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``."""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # BCHW -> BHWC
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)  # BHWC -> BCHW


class Fuser(nn.Module):
    """A stack of :class:`CXBlock`."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """``(features [B, C, h, w], mask [B, 1, S, S]) -> memory [B, C_mem, h, w]`` + encoding.

    Args:
        in_dim: image feature channels.
        out_dim: memory channels.
        downsampler_stride, downsampler_total_stride: the mask downsampler.
        fuser_layers: ConvNeXt blocks after adding mask and image features.
    """

    def __init__(
        self,
        in_dim: int = 256,
        out_dim: int = 64,
        downsampler_stride: int = 2,
        downsampler_total_stride: int = 16,
        fuser_layers: int = 2,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.mask_downsampler = MaskDownSampler(in_dim, downsampler_stride, downsampler_total_stride)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, fuser_layers)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False) -> tuple[Tensor, Tensor]:
        """
        Args:
            pix_feat: image features ``[B, C, h, w]``.
            masks: mask logits (or already scaled probabilities) ``[B, 1, S, S]``.
            skip_mask_sigmoid: ``masks`` are already in memory-encoder scale.
        Returns:
            memory ``[B, C_mem, h, w]`` and its position encoding ``[B, C_mem, h, w]``.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        pix_feat = pix_feat.to(masks.device)
        if pix_feat.shape[0] > 1 and pix_feat.stride(0) == 0:  # one frame for every object
            x = self.pix_feat_proj(pix_feat[:1]) + masks
        else:
            x = self.pix_feat_proj(pix_feat) + masks
        x = self.out_proj(self.fuser(x))
        b, _, h, w = x.shape
        pos = sine_position_encoding_2d(h, w, self.out_dim, x.device).to(x.dtype)[None].expand(b, -1, -1, -1)
        return x, pos
