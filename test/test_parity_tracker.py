"""The streaming tracker against the official SAM2VideoPredictor, driven frame by frame the
same way: prompts are added when their frame is reached, propagation goes one frame at a
time, prompts on past frames are followed by re-propagation up to the latest frame.

Frames are written as JPEG and read back so both sides see the same pixels. fp32 on CPU;
the official stores memories in bfloat16 and so do we (the default ``memory_dtype``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from conftest import moving_shapes_video, object_score_bias, rel_err
from PIL import Image

from sam2_model import SAM2Tracker

pytestmark = pytest.mark.parity

NUM_FRAMES = 20  # >= 16: the official caps pointers at min(video length, 16)
BF16_FRAMES = 13  # bf16 is slow on CPU: its session ends after the prompt on a past frame (t = 12)
H, W = 120, 160


@dataclass(frozen=True)
class Action:
    kind: str  # "click", "box", "mask", "remove"
    obj_id: int
    frame: int  # the frame the prompt refers to
    points: tuple = ()
    labels: tuple = ()
    box: tuple | None = None


# when frame t has been tracked, these happen (in order)
SCRIPT: dict[int, list[Action]] = {
    0: [Action("click", 1, 0, ((30, 40),), (1,)), Action("box", 2, 0, box=(96, 70, 144, 100))],
    4: [Action("mask", 3, 4)],
    7: [Action("click", 1, 7, ((52, 50),), (0,))],  # a correction on a tracked frame
    9: [Action("remove", 2, 9)],
    12: [Action("click", 3, 10, ((110, 40),), (1,))],  # a correction on a past frame
    14: [Action("click", 4, 12, ((120, 85),), (1,))],  # a new object on a past frame
}


@dataclass
class Answer:
    mask: np.ndarray  # [H, W] bool
    score: float
    low: torch.Tensor  # [h, w] low-res logits


@dataclass
class Record:
    frames: list[dict[int, Answer]] = field(default_factory=list)  # per frame: what track returned
    prompts: list[tuple[Action, Answer]] = field(default_factory=list)  # what each prompt returned
    retracked: dict[tuple[int, int], Answer] = field(default_factory=dict)  # (obj, frame) after past prompts


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames, masks = moving_shapes_video(NUM_FRAMES, H, W)
    root = tmp_path_factory.mktemp("jpeg_video")
    for t, img in enumerate(frames):
        Image.fromarray(img).save(root / f"{t:05d}.jpg", quality=95)
    decoded = [np.asarray(Image.open(root / f"{t:05d}.jpg").convert("RGB")) for t in range(NUM_FRAMES)]
    return root, decoded, masks


def _prompt_args(action: Action, masks) -> dict:
    if action.kind == "click":
        return {"points": np.array(action.points, np.float32), "labels": np.array(action.labels, np.int32)}
    if action.kind == "box":
        return {"box": np.array(action.box, np.float32)}
    return {"mask": masks[action.frame][action.obj_id]}


def run_ours(pair, frames, masks, precision: str = "fp32") -> Record:
    # fill_hole_area=0: the official skips hole filling without its CUDA op
    tracker = SAM2Tracker(pair.ours, fill_hole_area=0, precision=precision)
    rec = Record()
    for t, img in enumerate(frames):
        result = tracker.track(img)
        rec.frames.append({i: Answer(o.mask, o.object_score, o.logits) for i, o in result.objects.items()})
        for action in SCRIPT.get(t, []):
            if action.kind == "remove":
                tracker.remove_object(action.obj_id)
                continue
            o = tracker.add_prompt(action.obj_id, frame_index=action.frame, **_prompt_args(action, masks))
            rec.prompts.append((action, Answer(o.mask, o.object_score, o.logits)))
            if action.frame < t:  # what re-tracking left in the object's state
                state = next(s for s in tracker.iter_objects() if s.obj_id == action.obj_id)
                for f in range(action.frame + 1, t + 1):
                    out = state.outputs[f]
                    rec.retracked[(action.obj_id, f)] = Answer(None, float(out.object_score), out.raw_logits[0, 0])
    return rec


def _official_answer(ref, state, obj_id: int, t: int, video_logits: torch.Tensor) -> Answer:
    idx = state["obj_id_to_idx"][obj_id]
    outs = state["output_dict_per_obj"][idx]
    temp = state["temp_output_dict_per_obj"][idx]
    out = None
    for d in (
        temp["cond_frame_outputs"],
        temp["non_cond_frame_outputs"],
        outs["cond_frame_outputs"],
        outs["non_cond_frame_outputs"],
    ):
        if t in d:
            out = d[t]
            break
    return Answer((video_logits > 0).numpy(), float(out["object_score_logits"]), out["pred_masks"][0, 0])


def run_official(pair, frame_dir, masks, autocast_bf16: bool = False, num_frames: int = NUM_FRAMES) -> Record:
    ref = pair.ref
    rec = Record()
    with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
        warnings.simplefilter("ignore")
        state = ref.init_state(video_path=str(frame_dir))
        for t in range(num_frames):
            answers = {}
            if state["obj_ids"]:
                for _, obj_ids, video in ref.propagate_in_video(state, start_frame_idx=t, max_frame_num_to_track=0):
                    for k, obj_id in enumerate(obj_ids):
                        answers[obj_id] = _official_answer(ref, state, obj_id, t, video[k, 0])
            rec.frames.append(answers)
            for action in SCRIPT.get(t, []):
                if action.kind == "remove":
                    ref.remove_object(state, action.obj_id)
                    continue
                args = _prompt_args(action, masks)
                if action.kind == "mask":
                    _, obj_ids, video = ref.add_new_mask(state, action.frame, action.obj_id, args["mask"])
                else:
                    # keep earlier clicks on the frame, as our add_prompt does (the official
                    # refuses that with a box: the box is the first prompt on its frame here)
                    keep = action.kind != "box"
                    _, obj_ids, video = ref.add_new_points_or_box(
                        state, action.frame, action.obj_id, clear_old_points=not keep, **args
                    )
                k = list(obj_ids).index(action.obj_id)
                rec.prompts.append((action, _official_answer(ref, state, action.obj_id, action.frame, video[k, 0])))
                if action.frame < t:  # re-propagate up to the latest frame
                    n = t - action.frame - 1
                    for f, obj_ids, video in ref.propagate_in_video(state, action.frame + 1, n):
                        k = list(obj_ids).index(action.obj_id)
                        rec.retracked[(action.obj_id, f)] = _official_answer(ref, state, action.obj_id, f, video[k, 0])
    return rec


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


_RECORDS: dict[tuple[str, float], tuple[Record, Record]] = {}


def records(pair, video, bias: float) -> tuple[Record, Record]:
    key = (pair.name, bias)
    if key not in _RECORDS:
        frame_dir, frames, masks = video
        with object_score_bias(pair, bias), torch.inference_mode():
            _RECORDS[key] = (run_ours(pair, frames, masks), run_official(pair, frame_dir, masks))
    return _RECORDS[key]


def _compare(ours: Answer, ref: Answer, where: str, check_mask: bool = True) -> None:
    assert ours.score == pytest.approx(ref.score, rel=1e-3, abs=1e-4), f"object score at {where}"
    assert rel_err(ours.low, ref.low) <= 1e-3, f"low-res logits at {where}"
    if check_mask:
        assert _iou(ours.mask, ref.mask) >= 0.99, f"mask IoU at {where}"


@pytest.mark.parametrize("bias", [8.0, -8.0], ids=["visible", "occluded"])
def test_session_matches_official_frame_by_frame(pair, video, bias):
    ours, ref = records(pair, video, bias)
    assert len(ours.frames) == len(ref.frames) == NUM_FRAMES
    for t, (o_frame, r_frame) in enumerate(zip(ours.frames, ref.frames)):
        assert sorted(o_frame) == sorted(r_frame), f"objects on frame {t}"
        for obj_id in o_frame:
            _compare(o_frame[obj_id], r_frame[obj_id], f"frame {t}, object {obj_id}")
    expected_objects = {0: [], 1: [1, 2], 5: [1, 2, 3], 10: [1, 3], 15: [1, 3, 4]}
    for t, ids in expected_objects.items():
        assert sorted(ours.frames[t]) == ids


@pytest.mark.parametrize("bias", [8.0, -8.0], ids=["visible", "occluded"])
def test_prompt_answers_match_official(pair, video, bias):
    ours, ref = records(pair, video, bias)
    assert [a for a, _ in ours.prompts] == [a for a, _ in ref.prompts]
    for (action, o), (_, r) in zip(ours.prompts, ref.prompts):
        _compare(o, r, f"prompt {action}")


@pytest.mark.parametrize("bias", [8.0, -8.0], ids=["visible", "occluded"])
def test_retracking_after_past_prompts_matches_official(pair, video, bias):
    ours, ref = records(pair, video, bias)
    assert sorted(ours.retracked) == sorted(ref.retracked) == [(3, 11), (3, 12), (4, 13), (4, 14)]
    for key in ours.retracked:
        _compare(ours.retracked[key], ref.retracked[key], f"re-tracked object/frame {key}", check_mask=False)


def test_bf16_session_matches_official_under_autocast(pair_factory, video):
    """The same session in bf16: ours with ``precision="bf16"``, the official inside
    ``torch.autocast("cpu", torch.bfloat16)`` (the GPU issue's bar: mask IoU >= 0.98 per
    object and frame). The masks must also differ from the fp32 ones somewhere, or this
    would not be testing bf16 at all. The first ``BF16_FRAMES`` frames only: every kind of
    prompt, a removal and a correction on a past frame happen in them."""
    pair = pair_factory("sam2.1_hiera_tiny")
    frame_dir, frames, masks = video
    with object_score_bias(pair, 8.0), torch.inference_mode():
        ours = run_ours(pair, frames[:BF16_FRAMES], masks, precision="bf16")
        ref = run_official(pair, frame_dir, masks, autocast_bf16=True, num_frames=BF16_FRAMES)
    fp32_ours, _ = records(pair, video, 8.0)
    assert len(ours.frames) == len(ref.frames) == BF16_FRAMES
    script = [a for t in range(BF16_FRAMES) for a in SCRIPT.get(t, []) if a.kind != "remove"]
    assert [a for a, _ in ours.prompts] == [a for a, _ in ref.prompts] == script
    assert sorted(ours.retracked) == sorted(ref.retracked) == [(3, 11), (3, 12)]
    low_diff = 0.0
    for t, (o_frame, r_frame) in enumerate(zip(ours.frames, ref.frames)):
        assert sorted(o_frame) == sorted(r_frame), f"objects on frame {t}"
        for obj_id in o_frame:
            iou = _iou(o_frame[obj_id].mask, r_frame[obj_id].mask)
            assert iou >= 0.98, f"bf16 mask IoU {iou:.4f} at frame {t}, object {obj_id}"
            assert o_frame[obj_id].score > 0 and r_frame[obj_id].score > 0, f"presence at frame {t}, object {obj_id}"
            low_diff = max(low_diff, rel_err(o_frame[obj_id].low, fp32_ours.frames[t][obj_id].low))
    for (action, o), (_, r) in zip(ours.prompts, ref.prompts):
        assert _iou(o.mask, r.mask) >= 0.98, f"bf16 prompt answer {action}"
    assert low_diff > 1e-4, "bf16 logits equal the fp32 ones: autocast did not take effect"


def test_session_is_not_trivial(pair, video):
    """Masks are neither empty nor full, objects differ, and occlusion flips the outcome."""
    visible, _ = records(pair, video, 8.0)
    occluded, _ = records(pair, video, -8.0)
    areas = [a.mask.mean() for frame in visible.frames for a in frame.values()]
    assert 0.02 < np.mean(areas) < 0.98
    assert all(a.score > 0 for frame in visible.frames for a in frame.values())
    assert all(not a.mask.any() for frame in occluded.frames for a in frame.values() if a.score <= 0)
    last = visible.frames[-1]
    assert _iou(last[1].mask, last[3].mask) < 0.99 or not torch.equal(last[1].low, last[3].low)
