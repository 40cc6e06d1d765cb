"""The per-frame computations of the tracker, batched over objects.

Functions here read object states and return new outputs; they never modify the states
(the tracker commits the results).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..image_predictor import PREV_LOGITS_CLAMP
from ..modeling.sam2 import HeadsOutput, ImageFeatures, SAM2Model
from ..prompts import Prompt
from ..transforms import logits_to_image, mask_to_model, points_to_model
from .memory import MemoryLayout, gather_memory, stack_memory, to_device_async
from .options import TrackerOptions
from .postprocess import fill_holes, non_overlap
from .results import ObjectResult
from .state import FrameOutput, FramePrompt, ObjectState

__all__ = [
    "apply_prompt",
    "eager_step",
    "encode_memories",
    "frame_results",
    "result_tensors",
    "to_host",
    "track_objects",
    "tracking_step",
]


def _memory_pos(model: SAM2Model, device: torch.device) -> Tensor:
    from ..modeling.common import sine_position_encoding_2d

    e = model.config.embedding_size
    return sine_position_encoding_2d(e, e, model.config.mem_dim, device)[None]  # [1, Cm, h, w]


def _expand(feats: ImageFeatures, n: int) -> ImageFeatures:
    return feats.expand(n) if feats.features.shape[0] != n else feats


def condition(model: SAM2Model, opts: TrackerOptions, feats: ImageFeatures, objs: list[ObjectState], t: int) -> Tensor:
    """Memory-conditioned features of frame ``t`` for objects with the same memory layout."""
    c = model.config
    layouts = [
        gather_memory(o, t, c.num_maskmem, opts.max_object_pointers, c.use_signed_tpos_enc_to_obj_ptrs) for o in objs
    ]
    memory, memory_pos, n_ptr = stack_memory(
        model, layouts, _memory_pos(model, feats.features.device), opts.max_object_pointers
    )
    f = _expand(feats, len(objs))
    return model.condition_on_memory(f.features, f.pos, memory, memory_pos, n_ptr)


def tracking_step(
    model: SAM2Model,
    features: Tensor,
    pos: Tensor,
    high_res_0: Tensor,
    high_res_1: Tensor,
    memory: Tensor,
    memory_pos: Tensor,
    num_ptr_tokens: int,
    memory_dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One frame for a batch of B objects with the same memory layout: memory attention,
    SAM heads and the new memory. Plain tensors in and out (``torch.compile`` friendly).

    Args:
        features, pos: one image's stride-16 features and encoding ``[1, C, h, w]``.
        high_res_0, high_res_1: its projected high-res features ``[1, C/8, 4h, 4w]``,
            ``[1, C/4, 2h, 2w]``.
        memory, memory_pos: memory tokens ``[B, M, C_mem]`` (pointer tokens last).
        num_ptr_tokens: how many of the M tokens are pointer tokens.
        memory_dtype: storage dtype of the new memories.
    Returns:
        low-res logits ``[B, 1, 4h, 4w]``, object scores ``[B, 1]``, IoU ``[B]``, pointers
        ``[B, C]`` (float32) and the frame's memories ``[B, C_mem, h, w]`` (``memory_dtype``).
    """
    b = memory.shape[0]
    f = ImageFeatures(features, pos, (high_res_0, high_res_1)).expand(b)
    pix = model.condition_on_memory(f.features, f.pos, memory, memory_pos, num_ptr_tokens)
    heads = model.forward_heads(pix, f.high_res, multimask=model.use_multimask(False, 0))
    size = model.image_size
    high = F.interpolate(heads.logits, size=(size, size), mode="bilinear", align_corners=False)
    mem, _ = model.encode_memory(f.features, high, heads.object_score_logits, binarize=False)
    return (
        heads.logits.float(),
        heads.object_score_logits.float(),
        heads.iou.float(),
        heads.obj_ptr.float(),
        mem.to(memory_dtype),
    )


# (model, opts, feats, memory, memory_pos, num_ptr_tokens) -> tracking_step's outputs
StepFn = Callable[[SAM2Model, TrackerOptions, ImageFeatures, Tensor, Tensor, int], tuple[Tensor, ...]]


def eager_step(
    model: SAM2Model, opts: TrackerOptions, feats: ImageFeatures, memory: Tensor, memory_pos: Tensor, n_ptr: int
) -> tuple[Tensor, ...]:
    """:func:`tracking_step` run as it is."""
    hr0, hr1 = feats.high_res
    return tracking_step(model, feats.features, feats.pos, hr0, hr1, memory, memory_pos, n_ptr, opts.memory_dtype)


def track_objects(
    model: SAM2Model,
    opts: TrackerOptions,
    feats: ImageFeatures,
    objs: list[ObjectState],
    t: int,
    step: StepFn = eager_step,
    pos_cache: dict | None = None,
) -> tuple[dict[int, FrameOutput], dict[int, Tensor]]:
    """Track objects on frame ``t`` from their memories, batched by memory layout.

    ``feats`` holds one image (batch 1); the objects' memories for ``t-6 .. t-1`` must exist.
    ``pos_cache`` (a dict the caller keeps) reuses memory encodings across frames.
    Returns each object's output and its new memory ``[1, C_mem, h, w]``.
    """
    c = model.config
    groups: dict[tuple[int, ...], list[tuple[ObjectState, MemoryLayout]]] = defaultdict(list)
    for o in objs:
        lay = gather_memory(o, t, c.num_maskmem, opts.max_object_pointers, c.use_signed_tpos_enc_to_obj_ptrs)
        groups[lay.key if opts.batch_objects else (o.obj_id,)].append((o, lay))
    outputs: dict[int, FrameOutput] = {}
    memories: dict[int, Tensor] = {}
    memory_pos = _memory_pos(model, feats.features.device)
    for group in groups.values():
        layouts = [lay for _, lay in group]
        memory, pos, n_ptr = stack_memory(model, layouts, memory_pos, opts.max_object_pointers, pos_cache)
        logits, scores, iou, ptr, mem = step(model, opts, feats, memory, pos, n_ptr)
        for i, (o, _) in enumerate(group):
            outputs[o.obj_id] = FrameOutput(
                raw_logits=logits[i : i + 1],
                object_score=scores[i : i + 1],
                iou=iou[i : i + 1],
                obj_ptr=ptr[i : i + 1],
                prompted=False,
                is_cond=False,
            )
            memories[o.obj_id] = mem[i : i + 1]
    return outputs, memories


def encode_memories(
    model: SAM2Model, opts: TrackerOptions, feats: ImageFeatures, outputs: list[FrameOutput]
) -> list[Tensor]:
    """Spatial memories ``[1, C_mem, h, w]`` (storage dtype) of outputs on one frame, batched.

    Prompted outputs are encoded from their hole-filled, binarised mask; tracked ones from
    the sigmoid of their raw logits (as the official predictor).
    """
    if not outputs:
        return []
    size = model.image_size
    low = torch.cat([fill_holes(o.raw_logits, opts.fill_hole_area) if o.prompted else o.raw_logits for o in outputs])
    high = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    scores = torch.cat([o.object_score for o in outputs])
    f = _expand(feats, len(outputs)).features
    mems: list[Tensor | None] = [None] * len(outputs)
    for flag in (True, False):  # prompted and tracked outputs differ in the mask scaling
        idx = [i for i, o in enumerate(outputs) if o.prompted == flag]
        if not idx:
            continue
        if len(idx) == len(outputs):  # all alike: no index tensor to send to the device
            m, _ = model.encode_memory(f, high, scores, binarize=flag)
        else:
            m, _ = model.encode_memory(f[idx], high[idx], scores[idx], binarize=flag)
        for j, i in enumerate(idx):
            mems[i] = m[j : j + 1]
    return [m.to(opts.memory_dtype) for m in mems if m is not None]


def _heads_to_output(
    heads: HeadsOutput, prompt: FramePrompt | None, is_cond: bool, tracked: FrameOutput | None
) -> FrameOutput:
    return FrameOutput(
        raw_logits=heads.logits.float(),
        object_score=heads.object_score_logits.float(),
        iou=heads.iou.float(),
        obj_ptr=heads.obj_ptr.float(),
        prompted=True,
        is_cond=is_cond,
        prompt=prompt,
        tracked=tracked,
    )


def apply_prompt(
    model: SAM2Model,
    opts: TrackerOptions,
    obj: ObjectState,
    p: int,
    feats: ImageFeatures,
    prompt: Prompt,
    image_hw: tuple[int, int],
    clear_previous: bool,
) -> FrameOutput:
    """The object's answer on frame ``p`` after a prompt (official semantics).

    - not on that frame yet: an initial conditioning prompt (no memory);
    - a prompted (conditioning) frame: refined without memory, the previous mask is the
      mask prompt and earlier clicks are kept;
    - a tracked frame: a correction, memory-conditioned, the previous mask as mask prompt.
    A mask prompt is taken as the answer; clicks given with it refine it.
    ``clear_previous`` drops earlier prompts on the frame and the masks they produced.
    """
    size, device = model.image_size, feats.features.device
    prev = obj.outputs.get(p)
    mode = "init" if prev is None else ("refine" if prev.is_cond else "correct")
    tracked = None
    if prev is not None and mode == "correct":
        tracked = prev.tracked if prev.prompted else prev
    earlier, prev_logits = None, None
    if prev is not None and not clear_previous:
        earlier = prev.prompt
        prev_logits = fill_holes(prev.raw_logits, opts.fill_hole_area)
    elif clear_previous and tracked is not None:  # back to the memory-based answer
        prev_logits = fill_holes(tracked.raw_logits, opts.fill_hole_area)
    is_cond = mode != "correct" or opts.add_all_frames_to_correct_as_cond

    if prompt.mask is not None:  # the mask replaces earlier prompts on the frame
        heads = model.mask_as_output(feats.features, feats.high_res, mask_to_model(prompt.mask, size, device))
        if not prompt.has_points:
            return _heads_to_output(heads, None, is_cond, tracked)
        earlier, prev_logits = None, fill_holes(heads.logits.float(), opts.fill_hole_area)

    if earlier is None:
        record = FramePrompt(prompt.points, prompt.labels, prompt.box)
    else:
        record = earlier.extend(prompt.points, prompt.labels, prompt.box)
    coords, labels = record.point_inputs()
    points_t = points_to_model(coords, image_hw, size, device)[None]
    labels_t = torch.as_tensor(labels, device=device)[None]
    if mode == "correct":
        pix = condition(model, opts, feats, [obj], p)
    else:
        pix = model.no_memory_features(feats.features)
    multimask = model.use_multimask(is_init_cond_frame=mode != "correct", num_points=record.num_points)
    mask_inputs = None if prev_logits is None else prev_logits.clamp(-PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP)
    heads = model.forward_heads(pix, feats.high_res, points_t, labels_t, mask_inputs, multimask)
    return _heads_to_output(heads, record, is_cond, tracked)


def to_host(*tensors: Tensor) -> list[Tensor]:
    """Tensors on the CPU. From a GPU: asynchronous copies (into pinned memory) and one
    synchronisation for all of them, the only one of a tracked frame."""
    if all(t.device.type == "cpu" for t in tensors):
        return list(tensors)
    out = [t.to("cpu", non_blocking=True) for t in tensors]
    for device in {t.device for t in tensors if t.device.type == "cuda"}:
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(device))
        done.synchronize()
    return out


def _boxes(masks: Tensor) -> Tensor:
    """Inclusive boxes ``[B, 4]`` (x0, y0, x1, y1; garbage where a mask is empty) of
    ``masks`` ``[B, H, W]`` bool."""
    _, h, w = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # [B, H], [B, W]
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    y0, y1 = torch.where(rows, ys, h).amin(dim=1), torch.where(rows, ys, -1).amax(dim=1)
    x0, x1 = torch.where(cols, xs, w).amin(dim=1), torch.where(cols, xs, -1).amax(dim=1)
    return torch.stack((x0, y0, x1, y1), dim=1)


def _label_image(masks: Tensor, ids: Tensor, wide: bool) -> Tensor:
    """``[H, W]`` object ids (0 background; overlaps: the higher id) from ``masks``
    ``[B, H, W]`` of the increasing ``ids`` ``[B]``; int32 when ``wide``, else uint8."""
    labelled = masks.to(torch.int32) * ids.to(torch.int32)[:, None, None]  # [B, H, W]
    return labelled.amax(dim=0).to(torch.int32 if wide else torch.uint8)


def result_tensors(
    raw: Tensor,
    scores: Tensor,
    ious: Tensor,
    ids: Tensor,
    image_hw: tuple[int, int],
    fill_hole_area: int,
    non_overlap_masks: bool,
    wide: bool,
) -> tuple[Tensor, ...]:
    """The device half of :func:`frame_results` (fixed shapes, no synchronisation).

    Args:
        raw: low-res logits ``[B, 1, h, w]`` of the objects ``ids`` ``[B]`` (increasing).
        scores, ious: object-score logits and predicted IoU ``[B]``.
        wide: the label image needs int32 (an id above 255).
    Returns:
        masks ``[B, H, W]`` bool, hole-filled logits ``[B, h, w]``, areas ``[B]``, boxes
        ``[B, 4]``, the label image ``[H, W]``, scores and IoU ``[B]``.
    """
    filled = fill_holes(raw, fill_hole_area)
    video = logits_to_image(filled, image_hw)
    if non_overlap_masks:
        video = non_overlap(video)
    masks = video[:, 0] > 0  # [B, H, W]
    return masks, filled[:, 0], masks.sum(dim=(1, 2)), _boxes(masks), _label_image(masks, ids, wide), scores, ious


# result_tensors' signature: (raw, scores, ious, ids, image_hw, fill_hole_area, non_overlap_masks, wide)
ResultsFn = Callable[[Tensor, Tensor, Tensor, Tensor, tuple[int, int], int, bool, bool], tuple[Tensor, ...]]


def frame_results(
    opts: TrackerOptions,
    frame_index: int,
    image_hw: tuple[int, int],
    outputs: dict[int, FrameOutput],
    compute: ResultsFn = result_tensors,
) -> tuple[dict[int, ObjectResult], np.ndarray]:
    """Per-object results at the frame's size (hole filling, optional non-overlap) and the
    label image ``[H, W]``, computed where the model runs (by ``compute``, default
    :func:`result_tensors`) and brought back in one transfer."""
    if not outputs:
        return {}, np.zeros(image_hw, dtype=np.uint8)
    ids = sorted(outputs)
    raw = torch.cat([outputs[i].raw_logits for i in ids])  # [B, 1, h, w]
    scores = torch.cat([outputs[i].object_score.reshape(1) for i in ids])
    ious = torch.cat([outputs[i].iou.reshape(1) for i in ids])
    ids_t = to_device_async(ids, raw.device)
    wide = ids[-1] > 255
    tensors = compute(raw, scores, ious, ids_t, image_hw, opts.fill_hole_area, opts.non_overlap_masks, wide)
    masks_np, low, areas, boxes, label, scores, ious = to_host(*tensors)
    masks_np, areas, boxes = masks_np.numpy(), areas.tolist(), boxes.tolist()
    results = {}
    for k, obj_id in enumerate(ids):
        score = float(scores[k])
        results[obj_id] = ObjectResult(
            obj_id=obj_id,
            frame_index=frame_index,
            mask=masks_np[k],
            logits=low[k],
            object_score=score,
            iou=float(ious[k]),
            occluded=score <= 0,
            bbox=tuple(boxes[k]) if areas[k] else None,
            area=int(areas[k]),
        )
    return results, label.numpy()
