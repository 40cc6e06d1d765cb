"""Multi-head attention of the SAM heads and the memory attention, and its rotary (RoPE)
variant with 2-D axial frequencies."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import cached_table

__all__ = ["Attention", "RoPEAttention", "apply_rope", "axial_rope_tables"]


class Attention(nn.Module):
    """Attention with projections to an ``embedding_dim / downsample_rate`` inner width.

    Args:
        embedding_dim: width of the queries and of the output.
        num_heads: attention heads.
        downsample_rate: inner width divisor.
        dropout: attention dropout (training only).
        kv_in_dim: width of keys and values (defaults to ``embedding_dim``).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        kv_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError("num_heads must divide the inner width")
        self.num_heads = num_heads
        self.dropout_p = dropout
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # B,N,(h c) -> B,h,N,c

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # B, h, N, c
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))  # B,h,N,c -> B,N,(h c)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``q [B, Nq, C]``, ``k, v [B, Nk, C_kv]`` -> ``[B, Nq, C]``."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        return self._attend(q, k, v)


@cached_table
def _rope_cached(dim: int, side: int, theta: float, device: str, repeat: int) -> tuple[Tensor, Tensor]:
    dev = torch.device(device)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4, device=dev)[: dim // 4].float() / dim))  # [dim/4]
    t = torch.arange(side * side, dtype=torch.float32, device=dev)
    t_x, t_y = t % side, torch.div(t, side, rounding_mode="floor")  # column, row of each token
    angles = torch.cat((torch.outer(t_x, freqs), torch.outer(t_y, freqs)), dim=-1)  # [N, dim/2]
    # each angle applies to a channel pair: one value per channel; repeated for stacked frames
    cos = angles.cos().repeat_interleave(2, dim=-1).repeat(repeat, 1)  # [repeat*N, dim]
    sin = angles.sin().repeat_interleave(2, dim=-1).repeat(repeat, 1)
    return cos, sin


def axial_rope_tables(
    dim: int, num_tokens: int, theta: float, device: torch.device, repeat: int = 1
) -> tuple[Tensor, Tensor]:
    """cos and sin tables ``[repeat * N, dim]`` of 2-D axial RoPE on a square grid of N tokens.

    Channel pairs ``(2i, 2i+1)`` share an angle: the first half of the pairs turns with the
    column index, the second half with the row index. ``repeat`` stacks the table for
    several frames of the same grid. Cached per size and device.
    """
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"RoPE expects a square token grid, got {num_tokens} tokens")
    return _rope_cached(dim, side, float(theta), str(device), repeat)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive channel pairs of ``x [..., N, dim]`` by the tables ``[N, dim]``.

    ``(a, b) -> (a cos - b sin, a sin + b cos)``; computed in fp32, returned in ``x``'s dtype.
    """
    xf = x.float()
    pairs = xf.reshape(*xf.shape[:-1], -1, 2)
    turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (a, b) -> (-b, a)
    return (xf * cos + turned * sin).type_as(x)


class RoPEAttention(Attention):
    """Attention with axial RoPE on queries and keys.

    Keys may hold several frames of the query grid (``rope_k_repeat``): every frame gets the
    same rotation as the queries. The last ``num_k_exclude_rope`` keys (object-pointer
    tokens) are not rotated.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        """``q [B, Nq, C]``, ``k, v [B, Nk, C_kv]`` -> ``[B, Nq, C]``; Nq a square grid."""
        q = self._split_heads(self.q_proj(q))  # B, h, Nq, c
        k = self._split_heads(self.k_proj(k))  # B, h, Nk, c
        v = self._split_heads(self.v_proj(v))
        n_q = q.shape[-2]
        cos, sin = axial_rope_tables(q.shape[-1], n_q, self.rope_theta, q.device)
        q = apply_rope(q, cos, sin)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope > 0:
            if n_rope != n_q and not self.rope_k_repeat:
                raise ValueError("keys and queries differ in length but rope_k_repeat is off")
            k_cos, k_sin = axial_rope_tables(q.shape[-1], n_q, self.rope_theta, q.device, n_rope // n_q)
            k_rot = apply_rope(k[:, :, :n_rope], k_cos, k_sin)
            k = torch.cat((k_rot, k[:, :, n_rope:]), dim=2) if num_k_exclude_rope else k_rot
        return self._attend(q, k, v)
