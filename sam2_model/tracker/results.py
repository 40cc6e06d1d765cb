"""What the tracker returns: per-object and per-frame results, and its memory statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["FrameResult", "ObjectResult", "ObjectStats", "TrackerStats", "mask_bbox"]


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(x0, y0, x1, y1)`` of a ``[H, W]`` mask, inclusive; ``None`` when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


@dataclass
class ObjectResult:
    """One object on one frame."""

    obj_id: int  # the caller's object id
    frame_index: int  # the frame this answer is for
    mask: np.ndarray  # [H, W] bool at the frame's own size
    logits: torch.Tensor  # [S/4, S/4] float32 low-res mask logits (CPU), after hole filling
    object_score: float  # logit that the object is visible
    iou: float  # predicted IoU of the mask
    occluded: bool  # object_score <= 0: the model says the object is not visible
    bbox: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) pixels, inclusive; None if empty
    area: int  # mask pixels


@dataclass
class FrameResult:
    """Every tracked object on one processed frame."""

    frame_index: int  # counts processed frames from 0
    objects: dict[int, ObjectResult]  # by object id, increasing
    # [H, W] object ids, 0 background, the higher id where masks overlap (uint8 when every
    # id is below 256, else int32); None when not computed
    label_image: np.ndarray | None = None


@dataclass
class ObjectStats:
    """What the tracker holds for one object."""

    conditioning_frames: int  # prompted frames in its memory bank
    recent_memories: int  # encoded memories of recent (unprompted) frames, at most 6
    recent_pointers: int  # object pointers of the last 15 frames (unprompted ones)
    history_outputs: int  # per-frame outputs kept for prompts on past frames
    memory_bank_bytes: int  # conditioning + recent memories + recent pointers
    history_bytes: int  # per-frame outputs (logits, pointers) for past-frame prompts


@dataclass
class TrackerStats:
    """Memory held by the tracker; flat over time once the buffers are full."""

    objects: int  # objects tracked
    frames_processed: int  # frames seen by track()
    history_frames: int  # frames in the history buffer
    history_frame_bytes: int  # their pixels
    feature_cache_bytes: int  # cached image features of the latest frame
    per_object: dict[int, ObjectStats] = field(default_factory=dict)

    @property
    def memory_bank_bytes(self) -> int:
        return sum(s.memory_bank_bytes for s in self.per_object.values())

    @property
    def history_bytes(self) -> int:
        """History buffer: frames plus the objects' per-frame outputs."""
        return self.history_frame_bytes + sum(s.history_bytes for s in self.per_object.values())

    @property
    def total_bytes(self) -> int:
        return self.memory_bank_bytes + self.history_bytes + self.feature_cache_bytes
