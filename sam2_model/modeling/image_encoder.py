"""Image encoder: the Hiera trunk and an FPN neck that projects every stage to ``d_model``
channels, adds top-down features on the deeper levels and drops the stride-32 level."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import sine_position_encoding_2d
from .hiera import Hiera

__all__ = ["BackboneOutput", "FpnNeck", "ImageEncoder"]


@dataclass
class BackboneOutput:
    """Multi-scale features of a batch of images, high resolution first.

    ``fpn[i]`` is ``[B, d_model, S/4/2^i, S/4/2^i]`` (strides 4, 8, 16); ``pos[i]`` is the
    matching sine position encoding, ``[B, d_model, h_i, w_i]``.
    """

    fpn: list[Tensor]
    pos: list[Tensor]


class FpnNeck(nn.Module):
    """Lateral 1x1 projections plus nearest-neighbour top-down fusion on some levels.

    Args:
        d_model: output channels.
        backbone_channel_list: trunk channels, deep to shallow.
        top_down_levels: levels (0 = stride 4) that add the upsampled deeper level.
    """

    def __init__(self, d_model: int, backbone_channel_list: list[int], top_down_levels: tuple[int, ...]) -> None:
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.top_down_levels = set(top_down_levels)
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(lateral)

    def forward(self, xs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Trunk maps (shallow first) -> (features, position encodings), shallow first."""
        n = len(self.convs) - 1
        out: list[Tensor] = [xs[0]] * (n + 1)
        pos: list[Tensor] = [xs[0]] * (n + 1)
        prev = None
        for i in range(n, -1, -1):  # deep to shallow
            lateral = self.convs[n - i](xs[i])
            if i in self.top_down_levels and prev is not None:
                top_down = F.interpolate(prev.to(torch.float32), scale_factor=2.0, mode="nearest")
                prev = lateral + top_down
            else:
                prev = lateral
            out[i] = prev
            b, _, h, w = prev.shape
            pe = sine_position_encoding_2d(h, w, self.d_model, prev.device)
            pos[i] = pe.to(prev.dtype)[None].expand(b, -1, -1, -1)
        return out, pos


class ImageEncoder(nn.Module):
    """Trunk + neck; keeps the stride 4, 8 and 16 levels (the stride-32 one is dropped)."""

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        if trunk.channel_list != neck.backbone_channel_list:
            raise ValueError(f"trunk channels {trunk.channel_list} != neck channels {neck.backbone_channel_list}")
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, images: Tensor) -> BackboneOutput:
        """``[B, 3, S, S]`` normalised images -> :class:`BackboneOutput`."""
        features, pos = self.neck(self.trunk(images))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return BackboneOutput(fpn=features, pos=pos)
