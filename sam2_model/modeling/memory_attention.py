"""Memory attention: conditions the current frame's features on the memory bank (encoded
past masks and object pointers) with self- and cross-attention layers using RoPE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import RoPEAttention
from .common import rowwise

__all__ = ["MemoryAttention", "MemoryAttentionLayer"]


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to the memory (position
    encoding added to the memory keys only), ReLU feed-forward."""

    def __init__(
        self,
        d_model: int,
        mem_dim: int,
        dim_feedforward: int,
        dropout: float,
        rope_theta: float,
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads=1, dropout=dropout, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(
            d_model, num_heads=1, dropout=dropout, kv_in_dim=mem_dim, rope_theta=rope_theta, rope_k_repeat=True
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def self_attention(self, tgt: Tensor) -> Tensor:
        """The self-attention sub-block (with its residual): ``[B, HW, C] -> [B, HW, C]``."""
        x = self.norm1(tgt)
        return tgt + self.dropout1(self.self_attn(x, x, x))

    def cross_attention_and_ffn(
        self, tgt: Tensor, memory: Tensor, memory_pos: Tensor, num_k_exclude_rope: int = 0
    ) -> Tensor:
        """Cross-attention to the memory and the feed-forward sub-blocks."""
        x = self.norm2(tgt)
        tgt = tgt + self.dropout2(
            self.cross_attn_image(x, memory + memory_pos, memory, num_k_exclude_rope=num_k_exclude_rope)
        )
        return tgt + self.dropout3(rowwise(self._ffn, tgt))

    def _ffn(self, tgt: Tensor) -> Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tgt)))))

    def forward(self, tgt: Tensor, memory: Tensor, memory_pos: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        """``tgt [B, HW, C]``, ``memory``/``memory_pos [B, M, C_mem]`` -> ``[B, HW, C]``."""
        tgt = self.self_attention(tgt)
        return self.cross_attention_and_ffn(tgt, memory, memory_pos, num_k_exclude_rope)


class MemoryAttention(nn.Module):
    """A stack of :class:`MemoryAttentionLayer` and a final LayerNorm."""

    def __init__(
        self,
        d_model: int,
        mem_dim: int,
        num_layers: int,
        dim_feedforward: int,
        dropout: float,
        rope_theta: float,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, mem_dim, dim_feedforward, dropout, rope_theta) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        # On the CPU, objects go through the layers this many at a time (cache-friendlier
        # than one wide batch); None: the whole batch at once.
        self.cpu_object_chunk: int | None = 1

    def forward(
        self,
        curr: Tensor,
        curr_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:
        """Condition image tokens on the memory.

        Args:
            curr: current frame tokens ``[B, HW, C]``.
            curr_pos: their position encoding ``[B, HW, C]`` (0.1 of it is added).
            memory: ``[B, M, C_mem]``: spatial memories then object-pointer tokens.
            memory_pos: ``[B, M, C_mem]``.
            num_obj_ptr_tokens: how many of the last memory tokens are pointers (no RoPE).
        Returns:
            ``[B, HW, C]``.
        """
        b = curr.shape[0]
        shared = b > 1 and not self.training and curr.stride(0) == 0 and curr_pos.stride(0) == 0
        if shared:  # every object sees the same frame: its first self-attention is common
            x = self.layers[0].self_attention(curr[:1] + 0.1 * curr_pos[:1]).expand(b, -1, -1)
        else:
            x = self.layers[0].self_attention(curr + 0.1 * curr_pos)
        chunk = self.cpu_object_chunk if curr.device.type == "cpu" and not self.training else None
        if chunk is None or b <= chunk:
            return self._rest(x, memory, memory_pos, num_obj_ptr_tokens)
        parts = [
            self._rest(x[i : i + chunk], memory[i : i + chunk], memory_pos[i : i + chunk], num_obj_ptr_tokens)
            for i in range(0, b, chunk)
        ]
        return torch.cat(parts)

    def _rest(self, x: Tensor, memory: Tensor, memory_pos: Tensor, num_obj_ptr_tokens: int) -> Tensor:
        """Everything after the first self-attention."""
        x = self.layers[0].cross_attention_and_ffn(x, memory, memory_pos, num_obj_ptr_tokens)
        for layer in self.layers[1:]:
            x = layer(x, memory, memory_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(x)
