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

__all__ = ["MemoryLayout", "gather_memory", "memory_context_frames", "stack_memory"]


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


def _offsets_tensor(offsets: list[list[int]], device: torch.device) -> Tensor:
    """Pointer offsets ``[B, K]`` on the device; to a GPU through pinned memory,
    asynchronously (no synchronisation)."""
    t = torch.tensor(offsets)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def stack_memory(
    model: SAM2Model, layouts: list[MemoryLayout], memory_pos: Tensor, max_pointers: int
) -> tuple[Tensor, Tensor, int]:
    """Memory tokens of a batch of objects with the same layout key.

    Args:
        layouts: one per object, all with the same :attr:`MemoryLayout.key`.
        memory_pos: the spatial memories' position encoding ``[1, C_mem, h, w]``.
    Returns:
        memory ``[B, M, C_mem]``, its encoding ``[B, M, C_mem]`` and the number of pointer
        tokens at the end.
    """
    device = memory_pos.device
    pos_tokens = memory_pos.flatten(2).transpose(1, 2)  # BCHW -> B(HW)C
    mems, poss = [], []
    for slot_idx in range(len(layouts[0].spatial)):
        # fp32 before the concatenation: autocast refuses bf16 memories next to fp16
        slot_mems = torch.cat([lay.spatial[slot_idx][1].float() for lay in layouts]).to(device)  # [B, Cm, h, w]
        mems.append(slot_mems.flatten(2).transpose(1, 2))  # BCHW -> B(HW)C
        slots = [lay.spatial[slot_idx][0] for lay in layouts]
        enc = torch.cat([pos_tokens + model.memory_slot_encoding(s) for s in slots])  # [B, hw, Cm]
        poss.append(enc)
    num_ptr_tokens = 0
    if layouts[0].pointers:
        ptrs = torch.stack([torch.cat([p for _, p in lay.pointers]) for lay in layouts])  # [B, K, C]
        offsets = _offsets_tensor([[d for d, _ in lay.pointers] for lay in layouts], device)
        tokens, tokens_pos = model.pointer_tokens(ptrs.to(device), offsets, max_pointers)
        mems.append(tokens.float())
        poss.append(tokens_pos.float())
        num_ptr_tokens = tokens.shape[1]
    return torch.cat(mems, dim=1), torch.cat(poss, dim=1), num_ptr_tokens
