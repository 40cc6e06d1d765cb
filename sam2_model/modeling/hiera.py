"""Hiera: the hierarchical vision transformer SAM 2 uses as its image trunk.

Four stages at strides 4, 8, 16 and 32; windowed attention except in a few global blocks;
the first block of stages 2-4 max-pools its queries (and its skip connection) by 2x2.
Position embedding: a bicubically resized background grid plus a tiled per-window table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import HieraConfig
from .common import MLP, autocast_state, rowwise

__all__ = ["Hiera", "window_partition", "window_unpartition"]


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """Split a map into non-overlapping windows, zero-padding it to a multiple of ``window``.

    Args:
        x: ``[B, H, W, C]``.
    Returns:
        ``[B * nW, window, window, C]`` and the padded size ``(Hp, Wp)``.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    # B, nH, wh, nW, ww, C -> B, nH, nW, wh, ww, C -> (B nH nW), wh, ww, C
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)
    return windows, (hp, wp)


def window_unpartition(windows: Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, window, window, C] -> [B, H, W, C]``."""
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    # B, nH, nW, wh, ww, C -> B, nH, wh, nW, ww, C -> B, Hp, Wp, C
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def _pool(x: Tensor, stride: tuple[int, int] | None) -> Tensor:
    """Max-pool a ``[B, H, W, C]`` map by ``stride`` (no-op for ``None``)."""
    if stride is None:
        return x
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)  # BHWC -> BCHW
    return x.permute(0, 2, 3, 1)  # BCHW -> BHWC


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: ``[B, 3, H, W] -> [B, H/4, W/4, C]``."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # BCHW -> BHWC


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (stage transitions)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, H, W, C] -> [B, H', W', C_out]`` (``H' = H / q_stride`` when pooling)."""
        b, h, w, _ = x.shape
        qkv = rowwise(self.qkv, x).reshape(b, h * w, 3, self.num_heads, -1)  # B, HW, 3, n, c
        q, k, v = qkv.unbind(2)  # each B, HW, n, c
        if self.q_stride is not None:
            q = _pool(q.reshape(b, h, w, -1), self.q_stride)  # B, H', W', (n c)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)  # B, H'W', n, c
        # B, N, n, c -> B, n, N, c for attention, then back
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # B, n, N, c -> B, H, W, (n c)
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block: (windowed) attention with optional query pooling, MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        window_size: int,
        q_stride: tuple[int, int] | None,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, H, W, C] -> [B, H', W', C_out]``."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = _pool(self.proj(x), self.q_stride)
        window = self.window_size
        if window > 0:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            size = tuple(shortcut.shape[1:3])
            if self.q_stride is not None:  # the windows shrank with the queries
                window = window // self.q_stride[0]
                padded = (size[0] + (-size[0]) % window, size[1] + (-size[1]) % window)
            x = window_unpartition(x, window, padded, size)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """The trunk: ``[B, 3, S, S]`` -> four maps ``[B, C_i, S/4/2^i, S/4/2^i]``, shallow first."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        cfg = config
        if len(cfg.stages) != len(cfg.window_spec):
            raise ValueError("stages and window_spec must have the same length")
        self.stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: cfg.q_pool]

        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_size))
        win0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, win0, win0))

        self.blocks = nn.ModuleList()
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 0
        for i in range(cfg.depth):
            # The first block of a stage still uses the previous stage's window size (it
            # pools the queries inside those windows).
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * cfg.dim_mul)
                heads = int(heads * cfg.head_mul)
                stage += 1
            q_stride = tuple(cfg.q_stride) if i in q_pool_blocks else None
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, window, q_stride, cfg.mlp_ratio))
            dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]
        self._pos_cache: tuple[tuple, Tensor] | None = None  # (size, weights' identity and versions), table

    def _position_embedding(self, h: int, w: int) -> Tensor:
        """Background grid resized to ``h x w`` plus the tiled window table: ``[1, h, w, C]``.

        Without gradients it is computed once per size and kept until the weights change."""
        cacheable = not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        weights = (self.pos_embed, self.pos_embed_window)
        identity = tuple((t.device, t.dtype, t.data_ptr(), t._version) for t in weights)
        key = (h, w, autocast_state(self.pos_embed.device), *identity)
        if cacheable and self._pos_cache is not None and self._pos_cache[0] == key:
            return self._pos_cache[1]
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        pos = pos.permute(0, 2, 3, 1)  # BCHW -> BHWC
        if cacheable:
            self._pos_cache = (key, pos)
        return pos

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B, 3, S, S]`` -> stage outputs ``[B, C_i, H_i, W_i]``, stride 4 first."""
        x = self.patch_embed(x)
        x = x + self._position_embedding(x.shape[1], x.shape[2])
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))  # BHWC -> BCHW
        return outputs
