"""The per-frame computations of the tracker, batched over objects.

Functions here read object states and return new outputs; they never modify the states
(the tracker commits the results).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..image_predictor import PREV_LOGITS_CLAMP
from ..modeling.sam2 import HeadsOutput, ImageFeatures, SAM2Model
from ..prompts import Prompt
from ..transforms import logits_to_image, mask_to_model, points_to_model
from .memory import gather_memory, stack_memory
from .options import TrackerOptions
from .postprocess import fill_holes, non_overlap
from .results import ObjectResult, mask_bbox
from .state import FrameOutput, FramePrompt, ObjectState

__all__ = ["apply_prompt", "encode_memories", "frame_results", "track_objects"]


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


def track_objects(
    model: SAM2Model, opts: TrackerOptions, feats: ImageFeatures, objs: list[ObjectState], t: int
) -> dict[int, FrameOutput]:
    """Track objects on frame ``t`` from their memories (batched by memory layout).

    ``feats`` holds one image; the objects' memories for ``t-6 .. t-1`` must exist.
    """
    c = model.config
    groups: dict[tuple[int, ...], list[ObjectState]] = defaultdict(list)
    for o in objs:
        lay = gather_memory(o, t, c.num_maskmem, opts.max_object_pointers, c.use_signed_tpos_enc_to_obj_ptrs)
        groups[lay.key if opts.batch_objects else (o.obj_id,)].append(o)
    outputs: dict[int, FrameOutput] = {}
    multimask = model.use_multimask(is_init_cond_frame=False, num_points=0)
    for group in groups.values():
        pix = condition(model, opts, feats, group, t)
        high_res = _expand(feats, len(group)).high_res
        heads = model.forward_heads(pix, high_res, multimask=multimask)
        for i, o in enumerate(group):
            outputs[o.obj_id] = FrameOutput(
                raw_logits=heads.logits[i : i + 1].float(),
                object_score=heads.object_score_logits[i : i + 1].float(),
                iou=heads.iou[i : i + 1].float(),
                obj_ptr=heads.obj_ptr[i : i + 1].float(),
                prompted=False,
                is_cond=False,
            )
    return outputs


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
        if idx:
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


def frame_results(
    opts: TrackerOptions, frame_index: int, image_hw: tuple[int, int], outputs: dict[int, FrameOutput]
) -> dict[int, ObjectResult]:
    """Per-object results at the frame's size (hole filling, optional non-overlap)."""
    if not outputs:
        return {}
    ids = sorted(outputs)
    raw = torch.cat([outputs[i].raw_logits for i in ids])  # [B, 1, h, w]
    filled = fill_holes(raw, opts.fill_hole_area)
    video = logits_to_image(filled, image_hw)
    if opts.non_overlap_masks:
        video = non_overlap(video)
    masks = (video[:, 0] > 0).cpu().numpy()
    low = filled[:, 0].cpu()
    results = {}
    for k, obj_id in enumerate(ids):
        out = outputs[obj_id]
        score = float(out.object_score.reshape(-1)[0])
        mask = masks[k]
        results[obj_id] = ObjectResult(
            obj_id=obj_id,
            frame_index=frame_index,
            mask=mask,
            logits=low[k],
            object_score=score,
            iou=float(out.iou.reshape(-1)[0]),
            occluded=score <= 0,
            bbox=mask_bbox(mask),
            area=int(np.count_nonzero(mask)),
        )
    return results
