"""Typed state of a tracking session: the history buffer of frames and, per object, its
memory bank and its per-frame outputs."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
from torch import Tensor

from ..transforms import resize_image

__all__ = ["BufferedFrame", "CondMemory", "FrameOutput", "FramePrompt", "HistoryBuffer", "ObjectState"]


def _nbytes(t: Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


@dataclass(frozen=True)
class FramePrompt:
    """Clicks and box given for one object on one frame (accumulated), in image pixels."""

    points: np.ndarray  # [N, 2] float32
    labels: np.ndarray  # [N] int32, 1 / 0
    box: np.ndarray | None  # [4] float32 or None

    @property
    def num_points(self) -> int:
        return len(self.points) + (2 if self.box is not None else 0)

    def point_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Box corners (labels 2, 3) first, then clicks: ``[P, 2]``, ``[P]``."""
        coords, labels = [self.points.reshape(-1, 2)], [self.labels.reshape(-1)]
        if self.box is not None:
            coords.insert(0, self.box.reshape(2, 2))
            labels.insert(0, np.array([2, 3], dtype=np.int32))
        return np.concatenate(coords).astype(np.float32), np.concatenate(labels).astype(np.int32)

    def extend(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> FramePrompt:
        """Earlier clicks then the new ones; a new box replaces the old one."""
        return FramePrompt(
            np.concatenate((self.points.reshape(-1, 2), points)).astype(np.float32),
            np.concatenate((self.labels.reshape(-1), labels)).astype(np.int32),
            box if box is not None else self.box,
        )


@dataclass
class FrameOutput:
    """One object's answer on one frame."""

    raw_logits: Tensor | None  # [1, 1, h, w] fp32 as predicted (before hole filling); None: pruned
    object_score: Tensor  # [1, 1] visibility logit
    iou: Tensor  # [1] predicted IoU
    obj_ptr: Tensor  # [1, C] object pointer
    prompted: bool  # came from a prompt: its memory uses the binarised mask
    is_cond: bool  # a conditioning frame of the object
    prompt: FramePrompt | None = None  # clicks/box accumulated on this frame
    tracked: FrameOutput | None = None  # the memory-based answer before prompts (for clear_previous)

    def nbytes(self) -> int:
        own = _nbytes(self.raw_logits) + _nbytes(self.object_score) + _nbytes(self.iou) + _nbytes(self.obj_ptr)
        return own + (self.tracked.nbytes() if self.tracked is not None else 0)

    def pointer_only(self) -> FrameOutput:
        """The same output without its logits (kept only for its pointer)."""
        return replace(self, raw_logits=None, prompt=None, tracked=None)


@dataclass
class CondMemory:
    """A conditioning (prompted) frame in an object's memory bank."""

    memory: Tensor  # [1, C_mem, h, w] in the storage dtype
    obj_ptr: Tensor  # [1, C]

    def nbytes(self) -> int:
        return _nbytes(self.memory) + _nbytes(self.obj_ptr)


@dataclass
class ObjectState:
    """One tracked object: its memory bank and its recent per-frame outputs."""

    obj_id: int
    cond: dict[int, CondMemory] = field(default_factory=dict)  # frame -> memory, in prompt order
    memories: dict[int, Tensor] = field(default_factory=dict)  # unprompted frame -> memory
    outputs: dict[int, FrameOutput] = field(default_factory=dict)  # frame -> output

    def copy(self) -> ObjectState:
        """A copy whose containers can be changed without touching this one (tensors shared)."""
        return ObjectState(self.obj_id, dict(self.cond), dict(self.memories), dict(self.outputs))

    def non_cond_pointer(self, frame: int) -> Tensor | None:
        out = self.outputs.get(frame)
        return None if out is None or out.is_cond else out.obj_ptr

    def memory_bank_bytes(self, latest: int, pointer_window: int) -> int:
        cond = sum(c.nbytes() for c in self.cond.values())
        mem = sum(_nbytes(m) for m in self.memories.values())
        ptrs = sum(_nbytes(self.non_cond_pointer(f)) for f in range(latest - pointer_window + 1, latest + 1))
        return cond + mem + ptrs

    def history_bytes(self, latest: int, pointer_window: int) -> int:
        total = sum(o.nbytes() for o in self.outputs.values())
        recent_ptrs = sum(_nbytes(self.non_cond_pointer(f)) for f in range(latest - pointer_window + 1, latest + 1))
        return total - recent_ptrs  # recent pointers count in the memory bank

    def recent_pointers(self, latest: int, pointer_window: int) -> int:
        return sum(self.non_cond_pointer(f) is not None for f in range(latest - pointer_window + 1, latest + 1))

    def store(self, t: int, out: FrameOutput, memory: Tensor, max_cond: int) -> None:
        """Record frame ``t``: a prompted output's memory goes to ``cond`` (keeping at most
        ``max_cond`` prompted frames), another's to ``memories``."""
        self.outputs[t] = out
        if out.is_cond:
            self.cond[t] = CondMemory(memory, out.obj_ptr)
            self.memories.pop(t, None)
            self.limit_cond(max_cond)
        else:
            self.cond.pop(t, None)
            self.memories[t] = memory

    def limit_cond(self, max_cond: int) -> None:
        """Keep the first and the most recent prompted frames; an evicted one still in the
        memory window becomes an ordinary memory."""
        while len(self.cond) > max_cond:
            drop = sorted(self.cond)[1]
            cond = self.cond.pop(drop)
            out = self.outputs.get(drop)
            if out is not None:
                self.outputs[drop] = replace(out, is_cond=False)
                self.memories[drop] = cond.memory

    def drop_old_memories(self, latest: int, num_maskmem: int) -> None:
        """Keep the memories of the ``num_maskmem - 1`` frames up to ``latest``: those the
        next frame attends to."""
        for f in [f for f in self.memories if f <= latest - (num_maskmem - 1)]:
            del self.memories[f]

    def prune(self, latest: int, oldest: int, num_maskmem: int, max_object_pointers: int) -> None:
        """Bound the state once frame ``latest`` is processed and ``oldest`` is the oldest
        buffered frame: the ``num_maskmem - 1`` recent memories; outputs with logits for
        buffered frames; pointer-only outputs for the ``max_object_pointers - 1`` frames before."""
        self.drop_old_memories(latest, num_maskmem)
        keep_from = oldest - (max_object_pointers - 1)
        for f, out in list(self.outputs.items()):
            if f < keep_from or (f < oldest and out.is_cond):
                del self.outputs[f]
            elif f < oldest and out.raw_logits is not None:
                self.outputs[f] = out.pointer_only()


@dataclass(frozen=True)
class BufferedFrame:
    """A processed frame kept for prompts on past frames."""

    index: int  # frame index
    # the original [H, W, 3] or the model-size [S, S, 3] uint8 image, the smaller (numpy);
    # or, with on-device preprocessing, the model-size image as a tensor on the device
    pixels: np.ndarray | Tensor
    image_hw: tuple[int, int]  # the original (H, W)

    @staticmethod
    def store(index: int, image: np.ndarray, size: int) -> BufferedFrame:
        """Keep whichever of the original and the resized image is smaller (both exact)."""
        hw = (image.shape[0], image.shape[1])
        pixels = image if hw[0] * hw[1] <= size * size else resize_image(image, size)
        return BufferedFrame(index, pixels.copy(), hw)

    @staticmethod
    def store_on_device(index: int, model_pixels: Tensor, image_hw: tuple[int, int]) -> BufferedFrame:
        """Keep the model-size ``[S, S, 3]`` uint8 image already resized on the device."""
        return BufferedFrame(index, model_pixels, image_hw)

    def model_pixels(self, size: int) -> np.ndarray | Tensor:
        """The ``[S, S, 3]`` uint8 model input before normalisation."""
        if isinstance(self.pixels, Tensor):
            return self.pixels
        return resize_image(self.pixels, size)

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


class HistoryBuffer:
    """The last ``capacity`` processed frames."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._frames: deque[BufferedFrame] = deque(maxlen=capacity)

    def append(self, frame: BufferedFrame) -> None:
        self._frames.append(frame)

    def get(self, index: int) -> BufferedFrame | None:
        if not self._frames or not self.oldest <= index <= self.latest:
            return None
        return self._frames[index - self.oldest]

    @property
    def oldest(self) -> int:
        return self._frames[0].index if self._frames else -1

    @property
    def latest(self) -> int:
        return self._frames[-1].index if self._frames else -1

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self._frames)

    def clear(self) -> None:
        self._frames.clear()
