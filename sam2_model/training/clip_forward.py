"""A differentiable forward pass of SAM 2 over training clips.

One or several clips of the same length, their objects batched (each with its own memory,
each seeing its own clip's frames; the clips share their prompted frames): prompted frames are decoded
without memory from their prompts, the other frames are tracked from the memories of the
prompted frames and of up to 6 previous frames, with object pointers, exactly as at
inference (`sam2_model.tracker`), but keeping every tensor in the autograd graph.
Correction rounds add clicks sampled from the error of the previous round on prompted frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..modeling.common import sine_position_encoding_2d
from ..modeling.sam2 import HeadsOutput, ImageFeatures, SAM2Model

__all__ = ["ClipOutput", "ClipPrompt", "Correction", "FrameStep", "forward_clip"]

# (frame, low-res logits [B, 1, h, w]) -> the next corrective click per object ((x, y), label),
# None for an object that gets none, or None to stop the correction rounds
Correction = Callable[[int, Tensor], list[tuple[np.ndarray, int] | None] | None]


@dataclass
class ClipPrompt:
    """The prompt of one object on one prompted frame, at model-input resolution."""

    points: Tensor | None  # [P, 2] model-input pixels (box corners first, labels 2 and 3)
    labels: Tensor | None  # [P] int
    mask: Tensor | None  # [S, S] float 0/1 (a mask prompt)


@dataclass
class FrameStep:
    """The model's outputs for every object on one frame (one correction round)."""

    frame: int
    objects: list[HeadsOutput]  # one per object (batch 1 each)
    prompted: bool


@dataclass
class ClipOutput:
    """Everything the loss needs: one entry per frame and correction round."""

    steps: list[FrameStep] = field(default_factory=list)


def _memory_tokens(
    model: SAM2Model,
    bank: list[tuple[int, bool, Tensor, Tensor]],
    t: int,
    max_pointers: int,
) -> tuple[Tensor, Tensor, int]:
    """Memory of frame ``t`` from ``bank`` entries ``(frame, is_cond, memory, pointer)``."""
    c = model.config
    memory_pos = sine_position_encoding_2d(c.embedding_size, c.embedding_size, c.mem_dim, bank[0][2].device)
    pos_tokens = memory_pos.flatten(1).transpose(0, 1)[None]  # CHW -> 1(HW)C
    spatial, pointers = [], []
    for f, is_cond, mem, ptr in bank:
        if is_cond:
            spatial.append((0, mem))
            if f <= t:
                pointers.append((t - f if c.use_signed_tpos_enc_to_obj_ptrs else abs(t - f), ptr))
    by_frame = {f: (mem, ptr) for f, is_cond, mem, ptr in bank if not is_cond}
    for slot, f in enumerate(range(t - (c.num_maskmem - 1), t), start=1):
        if f in by_frame:
            spatial.append((slot, by_frame[f][0]))
    for dt in range(1, max_pointers):
        if t - dt in by_frame:
            pointers.append((dt, by_frame[t - dt][1]))
    b = bank[0][2].shape[0]
    mems = [m.flatten(2).transpose(1, 2) for _, m in spatial]  # BCHW -> B(HW)C
    poss = [(pos_tokens + model.memory_slot_encoding(s)).expand(b, -1, -1) for s, _ in spatial]
    n_ptr = 0
    if pointers:
        ptrs = torch.stack([p for _, p in pointers], dim=1)  # [B, K, C]
        offsets = torch.tensor([d for d, _ in pointers], device=ptrs.device)
        tokens, tokens_pos = model.pointer_tokens(ptrs, offsets, max_pointers)
        mems.append(tokens)
        poss.append(tokens_pos)
        n_ptr = tokens.shape[1]
    return torch.cat(mems, dim=1), torch.cat(poss, dim=1), n_ptr


def _prompt_heads(
    model: SAM2Model, feats: ImageFeatures, prompt: ClipPrompt, prev_logits: Tensor | None
) -> HeadsOutput:
    """Decode one object's prompt on a prompted frame, without memory."""
    if prompt.mask is not None:
        return model.mask_as_output(feats.features, feats.high_res, prompt.mask[None, None].float())
    multimask = model.use_multimask(is_init_cond_frame=True, num_points=prompt.points.shape[0])
    pix = model.no_memory_features(feats.features)
    points, labels = prompt.points[None].float(), prompt.labels[None]
    return model.forward_heads(pix, feats.high_res, points, labels, prev_logits, multimask)


def _split(heads: HeadsOutput) -> list[HeadsOutput]:
    """A batched output as per-object views."""
    return [
        HeadsOutput(*(getattr(heads, f)[i : i + 1] for f in HeadsOutput.__dataclass_fields__))
        for i in range(heads.logits.shape[0])
    ]


def _corrected(prompt: ClipPrompt, click: tuple[np.ndarray, int]) -> ClipPrompt:
    xy, label = click
    point = torch.as_tensor(np.asarray(xy, dtype=np.float32), device=prompt.points.device)[None]
    lab = torch.tensor([label], dtype=prompt.labels.dtype, device=prompt.labels.device)
    return ClipPrompt(torch.cat((prompt.points, point)), torch.cat((prompt.labels, lab)), None)


def _frame_features(feats_all: ImageFeatures, t: int, rows: Tensor | None, num_objects: int) -> ImageFeatures:
    """Each object's features on frame ``t``: ``[B, ...]`` (``rows``: the objects' rows in
    ``feats_all`` for frame 0, one per object; ``None``: one clip, every object sees row t)."""
    if rows is None:
        return ImageFeatures(
            feats_all.features[t : t + 1],
            feats_all.pos[t : t + 1],
            (feats_all.high_res[0][t : t + 1], feats_all.high_res[1][t : t + 1]),
        ).expand(num_objects)
    idx = rows + t
    hr0, hr1 = feats_all.high_res
    return ImageFeatures(feats_all.features[idx], feats_all.pos[idx], (hr0[idx], hr1[idx]))


def _one(feats: ImageFeatures, k: int) -> ImageFeatures:
    """Object ``k``'s features ``[1, ...]``."""
    hr0, hr1 = feats.high_res
    return ImageFeatures(feats.features[k : k + 1], feats.pos[k : k + 1], (hr0[k : k + 1], hr1[k : k + 1]))


def _prompted_frame(
    model: SAM2Model,
    feats: ImageFeatures,
    t: int,
    frame_prompts: list[ClipPrompt],
    correction: Correction | None,
    correction_rounds: int,
    out: ClipOutput,
) -> list[HeadsOutput]:
    """Decode a prompted frame from its prompts, then run the correction rounds; every round's
    outputs are appended to ``out``. Returns the last round's outputs, one per object."""
    objects = [_prompt_heads(model, _one(feats, k), p, None) for k, p in enumerate(frame_prompts)]
    out.steps.append(FrameStep(t, objects, prompted=True))
    for _ in range(correction_rounds if correction is not None else 0):
        clicks = correction(t, torch.cat([o.logits for o in objects]).detach())
        if clicks is None:
            break
        prompts_next, objects_next = [], []  # new lists: each round's step keeps its own outputs
        for k, (p, o, click) in enumerate(zip(frame_prompts, objects, clicks)):
            if p.mask is None and click is not None:  # mask prompts are not corrected
                p = _corrected(p, click)
                o = _prompt_heads(model, _one(feats, k), p, o.logits.detach())
            prompts_next.append(p)
            objects_next.append(o)
        frame_prompts, objects = prompts_next, objects_next
        out.steps.append(FrameStep(t, objects, prompted=True))
    return objects


def forward_clip(
    model: SAM2Model,
    images: Tensor,
    prompts: dict[int, list[ClipPrompt]],
    correction: Correction | None = None,
    correction_rounds: int = 0,
    max_pointers: int = 16,
    binarize_prompted: bool = False,
    clip_of: list[int] | None = None,
) -> ClipOutput:
    """Run SAM 2 over a clip (or a batch of clips) for a batch of objects, keeping the
    autograd graph.

    Args:
        model: the model (in train mode for training).
        images: normalised frames ``[T, 3, S, S]``, or ``[N, T, 3, S, S]`` for N clips.
        prompts: prompted frame -> one :class:`ClipPrompt` per object (frame 0 must be one).
        correction: ``(frame, low_res_logits [B, 1, h, w]) -> [((x, y), label) per object]``
            (model-input pixels) giving the next corrective click, or ``None`` to stop.
        correction_rounds: extra click rounds on prompted frames (not on mask prompts).
        binarize_prompted: encode prompted frames' memories from the binarised mask, as at
            inference (training uses the sigmoid, as SAM 2's training does).
        clip_of: with N clips, the clip of each object (``[B]`` indices into N).
    Returns:
        every frame's (and correction round's) outputs, in processing order.
    """
    if images.dim() == 4:
        images = images[None]
    n, num_frames = images.shape[0], images.shape[1]
    num_objects = len(prompts[min(prompts)])
    if n > 1 and (clip_of is None or len(clip_of) != num_objects):
        raise ValueError(f"clip_of: need one clip index per object ({num_objects}) with {n} clips, got {clip_of!r}")
    rows = None if n == 1 else torch.as_tensor(clip_of, device=images.device) * num_frames
    out = ClipOutput()
    feats_all = model.encode_image(images.flatten(0, 1))  # N T 3 S S -> (N T) 3 S S
    bank: list[tuple[int, bool, Tensor, Tensor]] = []
    size = model.image_size
    for t in range(num_frames):
        feats = _frame_features(feats_all, t, rows, num_objects)  # [B, ...]
        if t in prompts:
            objects = _prompted_frame(model, feats, t, prompts[t], correction, correction_rounds, out)
            is_cond = True
        else:
            memory, memory_pos, n_ptr = _memory_tokens(model, bank, t, max_pointers)
            pix = model.condition_on_memory(feats.features, feats.pos, memory, memory_pos, n_ptr)
            heads = model.forward_heads(pix, feats.high_res, multimask=model.use_multimask(False, 0))
            objects = _split(heads)
            out.steps.append(FrameStep(t, objects, prompted=False))
            is_cond = False
        if t == num_frames - 1:  # no later frame reads this frame's memory
            break
        logits = torch.cat([o.logits for o in objects])  # [B, 1, h, w]
        scores = torch.cat([o.object_score_logits for o in objects])
        high = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        binarize = binarize_prompted and is_cond
        mem, _ = model.encode_memory(feats.features, high, scores, binarize=binarize)
        bank.append((t, is_cond, mem, torch.cat([o.obj_ptr for o in objects])))
        # keep what later frames can still use: prompted frames, the last 15 pointers
        bank = [e for e in bank if e[1] or e[0] > t - max_pointers]
    return out
