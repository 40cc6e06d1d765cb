"""Several streams, one model: one frame for each of several tracker sessions, the image
encoder run once over all of them as a batch (several cameras on one GPU)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..prompts import validate_image
from ..transforms import normalize_image
from .results import FrameResult
from .tracker import SAM2Tracker

__all__ = ["track_many"]


@torch.inference_mode()
def track_many(sessions: Sequence[SAM2Tracker], images: Sequence[np.ndarray]) -> list[FrameResult]:
    """Track ``images[i]`` on ``sessions[i]`` for every i: the same results as
    ``[s.track(im) for s, im in zip(sessions, images)]``, with the image encoder run once over
    the batch of frames. Each session keeps its own objects, memory banks and history.

    Args:
        sessions: trackers on the same model (:meth:`SAM2Tracker.new_session`), each at most once.
        images: one RGB ``[H, W, 3]`` uint8 frame per session (sizes may differ).
    Raises:
        ValueError: naming ``sessions`` or ``images`` when they do not fit; nothing is tracked then.
    """
    if len(sessions) != len(images):
        raise ValueError(f"images: {len(images)} frames for {len(sessions)} sessions")
    if not sessions:
        return []
    first = sessions[0]
    if any(s.model is not first.model for s in sessions):
        raise ValueError("sessions: not all on the same model; build them with SAM2Tracker.new_session()")
    if len({id(s) for s in sessions}) != len(sessions):
        raise ValueError("sessions: a session appears twice; each takes one frame per round")
    images = [validate_image(im) for im in images]
    with contextlib.ExitStack() as stack:
        for s in sessions:
            stack.enter_context(s._lock)
        stack.enter_context(first._autocast())
        frames = [s._buffer_frame(s._frames_processed, im) for s, im in zip(sessions, images, strict=True)]
        if len(sessions) == 1:  # the session's own path (its CUDA graphs)
            feats = [first._encode(frames[0])]
        else:
            size, device = first.model.image_size, first.model.device
            batch = torch.stack([normalize_image(f.model_pixels(size), device) for f in frames])  # [N, 3, S, S]
            compiled = first._compiled  # compiled for the batch sizes of warmup(cameras=...), eager for others
            encoded = compiled.encode(batch) if compiled is not None else first.model.encode_image(batch)
            feats = [encoded.select(i) for i in range(len(frames))]
        return [s._track_encoded(f, e) for s, f, e in zip(sessions, frames, feats, strict=True)]
