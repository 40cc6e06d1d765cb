"""The streaming tracker on a tiny random configuration: batching, prompts, validation,
options and results (fast CPU tests; parity with the official is in test_parity_tracker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import moving_shapes_video, unit_model

from sam2_model import SAM2Tracker, TrackerOptions
from sam2_model.tracker.postprocess import connected_components, fill_holes, non_overlap

H, W = 60, 80


@pytest.fixture(scope="module")
def model():
    return unit_model()


@pytest.fixture(scope="module")
def video():
    frames, masks = moving_shapes_video(24, H, W, seed=1)
    return frames, masks


def start_session(model, frames, n: int = 6, **options) -> SAM2Tracker:
    """Track ``n`` frames with three objects prompted on frames 0 (click, box) and 2 (mask)."""
    tracker = SAM2Tracker(model, **options)
    for t in range(n):
        tracker.track(frames[t])
        if t == 0:
            tracker.add_prompt(1, points=[[15, 20]], labels=[1])
            tracker.add_prompt(2, box=[40, 30, 70, 55])
        if t == 2:
            mask = np.zeros((H, W), bool)
            mask[5:20, 45:65] = True
            tracker.add_prompt(3, mask=mask)
    return tracker


# ---------------------------------------------------------------- batching
def test_batched_objects_equal_one_at_a_time(model, video, monkeypatch):
    frames, _ = video
    batch_sizes = []
    original = model.condition_on_memory

    def spy(features, *args, **kwargs):
        batch_sizes.append(features.shape[0])
        return original(features, *args, **kwargs)

    monkeypatch.setattr(model, "condition_on_memory", spy)
    batched = start_session(model, frames, n=3)
    single = start_session(model, frames, n=3, batch_objects=False)
    for t in range(3, 22):
        rb, rs = batched.track(frames[t]), single.track(frames[t])
        assert sorted(rb.objects) == sorted(rs.objects)
        for obj_id in rb.objects:
            a, b = rb.objects[obj_id], rs.objects[obj_id]
            torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4)
            assert a.object_score == pytest.approx(b.object_score, rel=1e-4, abs=1e-5)
            assert np.mean(a.mask != b.mask) < 1e-3
    # objects 1 and 2 (same start frame) share a batch from the start; all three once the
    # pointer window is full on every object
    assert max(batch_sizes) == 3 and 2 in batch_sizes


# ---------------------------------------------------------------- results
def test_results_are_consistent(model, video):
    frames, _ = video
    tracker = start_session(model, frames)
    result = tracker.track(frames[6])
    assert result.frame_index == 6 and sorted(result.objects) == [1, 2, 3]
    for obj_id, o in result.objects.items():
        assert o.obj_id == obj_id and o.frame_index == 6
        assert o.mask.shape == (H, W) and o.mask.dtype == np.bool_
        assert o.logits.shape == (32, 32)
        assert o.area == int(o.mask.sum())
        assert o.occluded == (o.object_score <= 0)
        if o.area:
            ys, xs = np.nonzero(o.mask)
            assert o.bbox == (xs.min(), ys.min(), xs.max(), ys.max())
        else:
            assert o.bbox is None


def test_frame_index_counts_processed_frames(model, video):
    frames, _ = video
    tracker = SAM2Tracker(model)
    assert tracker.frame_index == -1
    assert [tracker.track(f).frame_index for f in frames[:3]] == [0, 1, 2]
    assert tracker.track(frames[3]).objects == {}  # no objects yet: still a result per frame


def test_prompt_answer_equals_next_frames_memory(model, video):
    """A prompt on the latest frame is in the memory of the next track()."""
    frames, _ = video
    a, b = SAM2Tracker(model), SAM2Tracker(model)
    for tr in (a, b):
        tr.track(frames[0])
        tr.add_prompt(1, points=[[15, 20]], labels=[1])
        tr.track(frames[1])
    a.add_prompt(1, points=[[60, 40]], labels=[1])  # a correction on frame 1
    ra, rb = a.track(frames[2]), b.track(frames[2])
    assert not torch.allclose(ra.objects[1].logits, rb.objects[1].logits)


def test_prompt_on_past_frame_retracks_to_latest(model, video):
    frames, _ = video
    tracker = start_session(model, frames, n=12)
    before = tracker.iter_objects()
    before = {
        s.obj_id: {f: o.raw_logits.clone() for f, o in s.outputs.items() if o.raw_logits is not None} for s in before
    }
    result = tracker.add_prompt(2, points=[[50, 40]], labels=[0], frame_index=8)
    assert result.frame_index == 8
    state = next(s for s in tracker.iter_objects() if s.obj_id == 2)
    for f in range(9, 12):  # re-tracked with the correction in memory
        assert not torch.equal(state.outputs[f].raw_logits, before[2][f])
    other = next(s for s in tracker.iter_objects() if s.obj_id == 1)
    for f in range(9, 12):  # other objects untouched
        assert torch.equal(other.outputs[f].raw_logits, before[1][f])


def test_frame_result_is_a_buffered_frame_as_it_stands_now(model, video):
    frames, _ = video
    tracker = start_session(model, frames, n=10)
    latest = tracker.track(frames[10])
    again = tracker.frame_result()
    assert again.frame_index == 10 and sorted(again.objects) == [1, 2, 3]
    for i, r in latest.objects.items():
        assert np.array_equal(again.objects[i].mask, r.mask) and again.objects[i].bbox == r.bbox
    assert np.array_equal(again.label_image, latest.label_image)
    assert sorted(tracker.frame_result(1).objects) == [1, 2]  # object 3 started on frame 2
    before = tracker.frame_result(7).objects[2].mask
    answer = tracker.add_prompt(2, points=[[50, 40]], labels=[0], frame_index=7)
    after = tracker.frame_result(7).objects[2]
    assert np.array_equal(after.mask, answer.mask) and not np.array_equal(after.mask, before)
    assert tracker.add_prompt(4, box=[2, 2, 20, 20], frame_index=8).area > 0
    assert 4 not in tracker.frame_result(7).objects and 4 in tracker.frame_result(8).objects
    with pytest.raises(ValueError, match="frame_index: frame 11 is not in the history buffer"):
        tracker.frame_result(11)


def test_retrack_holds_no_memory_older_than_a_frame_attends_to(model, video, monkeypatch):
    import sam2_model.tracker.tracker as tracker_module

    frames, _ = video
    tracker = start_session(model, frames, n=14)
    held = []
    real = tracker_module.track_objects

    def spy(model, options, feats, objs, t, step):
        held.append((t, sorted(objs[0].memories)))
        return real(model, options, feats, objs, t, step)

    monkeypatch.setattr(tracker_module, "track_objects", spy)
    tracker.add_prompt(2, points=[[50, 40]], labels=[0], frame_index=3)
    assert [t for t, _ in held] == list(range(4, 14))
    for t, memories in held:  # of the frames before t: t-6 .. t-1, not frame 0 (a prompt's)
        assert [f for f in memories if f < t] == [f for f in range(max(t - 6, 1), t)], t


def test_new_object_on_past_frame(model, video):
    frames, _ = video
    tracker = start_session(model, frames, n=10)
    tracker.add_prompt(7, box=[5, 5, 30, 30], frame_index=6)
    state = next(s for s in tracker.iter_objects() if s.obj_id == 7)
    assert list(state.cond) == [6] and all(f in state.outputs for f in range(6, 10))
    assert 7 in tracker.track(frames[10]).objects


def test_clear_previous_restarts_the_frame(model, video):
    frames, _ = video
    fresh = SAM2Tracker(model)
    fresh.track(frames[0])
    want = fresh.add_prompt(1, points=[[60, 40]], labels=[1])
    tracker = SAM2Tracker(model)
    tracker.track(frames[0])
    tracker.add_prompt(1, points=[[15, 20]], labels=[1])
    kept = tracker.add_prompt(1, points=[[60, 40]], labels=[1])  # refines: 2 clicks
    assert not torch.equal(kept.logits, want.logits)
    cleared = tracker.add_prompt(1, points=[[60, 40]], labels=[1], clear_previous=True)
    torch.testing.assert_close(cleared.logits, want.logits)


def test_max_conditioning_frames_keeps_first_and_latest(model, video):
    frames, _ = video
    tracker = SAM2Tracker(model, max_conditioning_frames=3, add_all_frames_to_correct_as_cond=True)
    for t in range(8):
        tracker.track(frames[t])
        tracker.add_prompt(1, points=[[15 + t, 20]], labels=[1])
    state = next(tracker.iter_objects())
    assert sorted(state.cond) == [0, 6, 7]
    assert tracker.stats().per_object[1].conditioning_frames == 3
    tracker.track(frames[8])  # still tracks


def test_remove_and_reset(model, video):
    frames, _ = video
    tracker = start_session(model, frames)
    tracker.remove_object(2)
    assert sorted(tracker.track(frames[6]).objects) == [1, 3]
    tracker.reset()
    assert tracker.object_ids == [] and tracker.frame_index == -1
    assert tracker.track(frames[0]).frame_index == 0
    assert tracker.stats().history_frames == 1


def test_non_overlap_option(model, video):
    frames, _ = video
    tracker = start_session(model, frames, non_overlap_masks=True)
    masks = [o.mask for o in tracker.track(frames[6]).objects.values()]
    assert not np.any(np.sum(masks, axis=0) > 1)


def test_bf16_precision_runs(model, video):
    frames, _ = video
    tracker = start_session(model, frames, n=3, precision="bf16")
    result = tracker.track(frames[3])
    assert sorted(result.objects) == [1, 2, 3]
    assert all(o.logits.dtype == torch.float32 for o in result.objects.values())


# ---------------------------------------------------------------- post-processing
def _components_reference(mask: np.ndarray) -> np.ndarray:
    """Plain flood fill (8-connectivity): component size per pixel."""
    h, w = mask.shape
    sizes = np.zeros((h, w), int)
    seen = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                stack, comp = [(y, x)], []
                seen[y, x] = True
                while stack:
                    cy, cx = stack.pop()
                    comp.append((cy, cx))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ny, nx = cy + dy, cx + dx
                            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                                seen[ny, nx] = True
                                stack.append((ny, nx))
                for cy, cx in comp:
                    sizes[cy, cx] = len(comp)
    return sizes


@pytest.mark.parametrize("density", [0.3, 0.5, 0.7])
def test_connected_components_match_flood_fill(density):
    gen = torch.Generator().manual_seed(int(density * 10))
    mask = torch.rand(2, 40, 50, generator=gen) < density
    labels, areas = connected_components(mask)
    for b in range(2):
        want = _components_reference(mask[b].numpy())
        assert np.array_equal(areas[b].numpy(), want)
        # one label per component
        for size_label in np.unique(labels[b].numpy()[mask[b].numpy()]):
            assert np.all(want[labels[b].numpy() == size_label] == want[labels[b].numpy() == size_label][0])


def test_fill_holes_fills_only_small_background_components():
    logits = torch.full((1, 1, 20, 20), 5.0)
    logits[0, 0, 5:7, 5:7] = -3.0  # 4-pixel hole: filled
    logits[0, 0, 12:15, 12:15] = -3.0  # 9-pixel hole: kept with max_area 8
    out = fill_holes(logits, max_area=8)
    assert torch.all(out[0, 0, 5:7, 5:7] == 0.1)
    assert torch.all(out[0, 0, 12:15, 12:15] == -3.0)
    assert torch.equal(fill_holes(logits, 0), logits)


def test_non_overlap_keeps_the_best_object():
    logits = torch.tensor([[[[2.0, -1.0]]], [[[1.0, 3.0]]]])
    out = non_overlap(logits)
    assert out[0, 0, 0].tolist() == [2.0, -10.0] and out[1, 0, 0].tolist() == [-10.0, 3.0]


# ---------------------------------------------------------------- validation
def test_options_are_checked(model):
    with pytest.raises(TypeError, match="unknown tracker option"):
        SAM2Tracker(model, history=5)
    for bad in ({"history_frames": 3}, {"precision": "fp8"}, {"max_objects": 0}, {"max_conditioning_frames": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrackerOptions(**bad)


BAD_CALLS = [
    ("points outside", lambda t: t.add_prompt(5, points=[[200, 10]], labels=[1]), "points:"),
    ("NaN point", lambda t: t.add_prompt(5, points=[[np.nan, 10]], labels=[1]), "points:"),
    ("inf point", lambda t: t.add_prompt(1, points=[[np.inf, 10]], labels=[1]), "points:"),
    ("label 2", lambda t: t.add_prompt(1, points=[[10, 10]], labels=[2]), "labels:"),
    ("labels length", lambda t: t.add_prompt(1, points=[[10, 10], [20, 20]], labels=[1]), "labels:"),
    ("box x1 < x0", lambda t: t.add_prompt(5, box=[50, 10, 20, 30]), "box:"),
    ("mask shape", lambda t: t.add_prompt(5, mask=np.ones((H, W + 1), bool)), "mask:"),
    ("no prompt", lambda t: t.add_prompt(5), "prompt:"),
    ("remove unknown", lambda t: t.remove_object(42), "obj_id:"),
    ("negative id", lambda t: t.add_prompt(-1, points=[[10, 10]], labels=[1]), "obj_id:"),
    ("frame too old", lambda t: t.add_prompt(1, points=[[10, 10]], labels=[1], frame_index=-5), "frame_index:"),
    ("future frame", lambda t: t.add_prompt(1, points=[[10, 10]], labels=[1], frame_index=99), "frame_index:"),
    ("frame not int", lambda t: t.add_prompt(1, points=[[10, 10]], labels=[1], frame_index=2.5), "frame_index:"),
    ("gray image", lambda t: t.track(np.zeros((H, W), np.uint8)), "image:"),
    ("float image", lambda t: t.track(np.zeros((H, W, 3), np.float32)), "image:"),
    ("rgba image", lambda t: t.track(np.zeros((H, W, 4), np.uint8)), "image:"),
]


@pytest.mark.parametrize(("name", "call", "field"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_raises_and_changes_nothing(model, video, name, call, field):
    frames, _ = video
    tracker = start_session(model, frames, max_objects=3)
    twin = start_session(model, frames, max_objects=3)
    before = tracker.stats()
    with pytest.raises(ValueError, match=field):
        call(tracker)
    assert tracker.stats() == before
    got, want = tracker.track(frames[6]), twin.track(frames[6])
    assert got.frame_index == want.frame_index and sorted(got.objects) == sorted(want.objects)
    for obj_id in got.objects:
        assert torch.equal(got.objects[obj_id].logits, want.objects[obj_id].logits)


def test_too_many_objects(model, video):
    frames, _ = video
    tracker = start_session(model, frames, max_objects=3)
    with pytest.raises(ValueError, match="obj_id: already tracking max_objects=3"):
        tracker.add_prompt(9, points=[[10, 10]], labels=[1])
    tracker.add_prompt(1, points=[[10, 10]], labels=[1])  # refining an existing one is fine


def test_prompt_before_any_frame(model):
    with pytest.raises(ValueError, match="frame_index: no frame has been processed"):
        SAM2Tracker(model).add_prompt(1, points=[[1, 1]], labels=[1])


def test_frames_that_left_the_buffer(model, video):
    frames, _ = video
    tracker = SAM2Tracker(model, history_frames=8)
    for t in range(20):
        tracker.track(frames[t])
        if t == 0:
            tracker.add_prompt(1, points=[[15, 20]], labels=[1])
    assert tracker.oldest_frame_index == 12
    with pytest.raises(ValueError, match=r"frame 11 is not in the history buffer .*12\.\.19"):
        tracker.add_prompt(1, points=[[10, 10]], labels=[1], frame_index=11)
    # object 1 was tracked before the buffer: a correction needs 6 earlier memories
    with pytest.raises(ValueError, match=r"frame 13 is too old to prompt object 1 on.*use frames 18\.\.19"):
        tracker.add_prompt(1, points=[[10, 10]], labels=[1], frame_index=13)
    tracker.add_prompt(1, points=[[10, 10]], labels=[1], frame_index=18)
    tracker.add_prompt(2, points=[[10, 10]], labels=[1], frame_index=12)  # a new object: no memory needed
