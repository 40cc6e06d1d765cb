"""Which memories an object attends to on a frame, and their assembly into tokens.

For frame ``t`` (as the official video predictor, tracking forward):
- spatial memories: every conditioning frame (slot 0), then the unprompted frames
  ``t-6 .. t-1`` (slots 1..6, older to newer), missing ones skipped;
- object pointers: conditioning frames at or before ``t``, then unprompted frames
  ``t-1 .. t-15``, with their temporal distance to ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..modeling.sam2 import SAM2Model
from .state import ObjectState

__all__ = ["MemoryLayout", "gather_memory", "memory_context_frames", "stack_memory", "to_device_async"]


@dataclass
class MemoryLayout:
    """The memories one object attends to on one frame."""

    spatial: list[tuple[int, Tensor]]  # (slot, memory [1, C_mem, h, w]) in attention order
    pointers: list[tuple[int, Tensor]]  # (temporal offset, pointer [1, C]) in attention order

    @property
    def key(self) -> tuple[int, int]:
        """Objects with the same key can be batched: same number of memory tokens."""
        return len(self.spatial), len(self.pointers)


def memory_context_frames(t: int, num_maskmem: int) -> range:
    """The unprompted frames whose memories frame ``t`` attends to: ``t-6 .. t-1``."""
    return range(t - (num_maskmem - 1), t)


def gather_memory(obj: ObjectState, t: int, num_maskmem: int, max_pointers: int, signed: bool) -> MemoryLayout:
    """The memory layout of ``obj`` for tracking (or correcting) frame ``t``.

    Raises:
        KeyError: an unprompted frame in ``t-6 .. t-1`` has an output but no memory (the
            caller must rebuild it first).
    """
    spatial = [(0, c.memory) for c in obj.cond.values()]
    for slot, f in enumerate(memory_context_frames(t, num_maskmem), start=1):
        out = obj.outputs.get(f)
        if out is None or out.is_cond:
            continue
        if f not in obj.memories:
            raise KeyError(f)
        spatial.append((slot, obj.memories[f]))
    pointers = [(t - f if signed else abs(t - f), c.obj_ptr) for f, c in obj.cond.items() if f <= t]
    for dt in range(1, max_pointers):
        f = t - dt
        if f < 0:
            break
        ptr = obj.non_cond_pointer(f)
        if ptr is not None:
            pointers.append((dt, ptr))
    return MemoryLayout(spatial, pointers)


def to_device_async(values: list, device: torch.device) -> Tensor:
    """A small integer tensor made from ``values`` on ``device``; to a GPU through pinned
    memory, asynchronously (no synchronisation)."""
    t = torch.tensor(values)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _spatial_pos(
    model: SAM2Model, slots: tuple[tuple[int, ...], ...], memory_pos: Tensor, cache: dict | None
) -> Tensor:
    """Encoding ``[B, S*hw, C_mem]`` of B objects' spatial memories in ``slots`` (per object)."""
    key = (slots, memory_pos.device, memory_pos.dtype)
    if cache is not None and key in cache:
        return cache[key]
    pos_tokens = memory_pos.flatten(2).transpose(1, 2)  # BCHW -> B(HW)C
    per_object = [torch.cat([pos_tokens + model.memory_slot_encoding(s) for s in obj], dim=1) for obj in slots]
    enc = torch.cat(per_object)  # [B, S*hw, Cm]
    if cache is not None:
        if len(cache) >= 64:  # unusual slot patterns: start over rather than grow
            cache.clear()
        cache[key] = enc
    return enc


def stack_memory(
    model: SAM2Model,
    layouts: list[MemoryLayout],
    memory_pos: Tensor,
    max_pointers: int,
    pos_cache: dict | None = None,
) -> tuple[Tensor, Tensor, int]:
    """Memory tokens of a batch of objects with the same layout key.

    Args:
        layouts: one per object, all with the same :attr:`MemoryLayout.key`.
        memory_pos: the spatial memories' position encoding ``[1, C_mem, h, w]``.
        pos_cache: a dict kept by the caller to reuse spatial encodings across frames.
    Returns:
        memory ``[B, M, C_mem]``, its encoding ``[B, M, C_mem]`` and the number of pointer
        tokens at the end.
    """
    device = memory_pos.device
    b, s = len(layouts), len(layouts[0].spatial)
    mems, poss = [], []
    if s:
        with torch.autocast(device.type, enabled=False):  # fp16 autocast refuses to concatenate bf16
            spatial = torch.cat([m for lay in layouts for _, m in lay.spatial])  # [B*S, Cm, h, w], object-major
        cm = spatial.shape[1]
        spatial = spatial.reshape(b, s, cm, -1).transpose(2, 3)  # (B S) Cm h w -> B S (hw) Cm
        mems.append(spatial.to(device, torch.float32, memory_format=torch.contiguous_format).reshape(b, -1, cm))
        slots = tuple(tuple(slot for slot, _ in lay.spatial) for lay in layouts)
        poss.append(_spatial_pos(model, slots, memory_pos, pos_cache))
    num_ptr_tokens = 0
    if layouts[0].pointers:
        k = len(layouts[0].pointers)
        ptrs = torch.cat([p for lay in layouts for _, p in lay.pointers]).reshape(b, k, -1)  # (B K) C -> B K C
        offsets = to_device_async([[d for d, _ in lay.pointers] for lay in layouts], device)
        tokens, tokens_pos = model.pointer_tokens(ptrs.to(device), offsets, max_pointers)
        mems.append(tokens.float())
        poss.append(tokens_pos.float())
        num_ptr_tokens = tokens.shape[1]
    return torch.cat(mems, dim=1), torch.cat(poss, dim=1), num_ptr_tokens
