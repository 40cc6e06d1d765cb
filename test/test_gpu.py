"""The fast path on a CUDA GPU (skipped, with the reason, where there is none; CI has none).

Run on a GPU machine with ``pytest test/test_gpu.py``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import moving_shapes_video, unit_model
from test_fast_path import NUM_FRAMES, run_session

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def video():
    return moving_shapes_video(NUM_FRAMES + 3, 120, 160)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def _synchronising_calls(tracker, image: np.ndarray):
    """Track one frame under CUDA's sync debug mode: (the synchronising calls it reports, result)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            result = tracker.track(image)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    messages = [str(w.message) for w in caught]
    # the mode's own notice ("a prototype feature ...") is not a synchronising call
    return [m for m in messages if "synchroniz" in m.lower() and "prototype" not in m], result


def test_a_tracked_frame_synchronises_once(video):
    """After warm-up, a steady-state frame with three objects makes no synchronising call
    (CUDA's sync debug mode reports every implicit one); only the results' transfer waits."""
    tracker, _ = run_session(unit_model().cuda(), video, frames=NUM_FRAMES, warmup=True)
    syncs, result = _synchronising_calls(tracker, video[0][NUM_FRAMES])
    assert syncs == [], syncs
    assert len(result.objects) == 3 and result.label_image is not None


def test_fp32_on_the_gpu_matches_the_cpu(video):
    model = unit_model()
    _, cpu = run_session(model, video, frames=NUM_FRAMES)
    _, gpu = run_session(unit_model().cuda(), video, frames=NUM_FRAMES, allow_tf32=False, preprocess="pil")
    for a, b in zip(cpu, gpu):
        for obj_id, ra in a.objects.items():
            rb = b.objects[obj_id]
            assert _mask_iou(ra.mask, rb.mask) >= 0.99
            assert abs(ra.object_score - rb.object_score) <= 1e-3 * max(abs(ra.object_score), 1.0)


def test_compiled_on_the_gpu_matches_eager(video):
    model = unit_model().cuda()
    _, eager = run_session(model, video, frames=NUM_FRAMES, objects=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker, compiled = run_session(
            model, video, frames=NUM_FRAMES, objects=2, max_objects=2, warmup=True, compile=True
        )
    assert tracker._compiled.buckets == (1, 2)
    assert tracker._compiled.fallbacks == 0 and tracker._compiled.calls > NUM_FRAMES
    for a, b in zip(eager, compiled):
        for obj_id, ra in a.objects.items():
            assert _mask_iou(ra.mask, b.objects[obj_id].mask) >= 0.99


def test_bf16_and_fp16_on_the_gpu(video):
    model = unit_model().cuda()
    _, fp32 = run_session(model, video, frames=10)
    for precision in ("bf16", "fp16"):
        _, low = run_session(model, video, frames=10, precision=precision)
        for a, b in zip(fp32, low):
            for obj_id, ra in a.objects.items():
                rb = b.objects[obj_id]
                assert rb.logits.dtype == torch.float32 and rb.mask.shape == ra.mask.shape
                assert _mask_iou(ra.mask, rb.mask) >= 0.8, precision


def test_cuda_graphs_match_eager(video):
    """Replayed CUDA graphs (encoder, step padded to the 4-object bucket, results) give the
    eager tracker's answers; the steady-state frames really go through the graphs."""
    model = unit_model().cuda()
    frames = NUM_FRAMES + 3
    _, eager = run_session(model, video, frames=frames, precision="bf16")
    tracker, graphed = run_session(model, video, frames=frames, precision="bf16", warmup=True, cuda_graphs=True)
    graphs = tracker._graphs
    assert graphs is not None and not graphs._failed, graphs._failed
    assert len(graphs._steps) == 3 and graphs._encoder is not None  # buckets 1, 2, 4
    # an encoder replay per frame, a results replay per frame with objects, and a step
    # replay per frame from 16 on (the first with 15 recent pointers: the steady state)
    assert graphs.replays == frames + (frames - 1) + (frames - 16)
    for a, b in zip(eager, graphed):
        assert sorted(a.objects) == sorted(b.objects)
        assert (a.label_image == b.label_image).mean() >= 0.99
        for obj_id, ra in a.objects.items():
            rb = b.objects[obj_id]
            assert _mask_iou(ra.mask, rb.mask) >= 0.99
            assert abs(ra.object_score - rb.object_score) <= 1e-2 * max(abs(ra.object_score), 1.0)


def test_cuda_graph_frame_synchronises_once(video):
    """With CUDA graphs a steady-state frame still makes no synchronising call but the results'."""
    tracker, _ = run_session(unit_model().cuda(), video, frames=NUM_FRAMES, warmup=True, cuda_graphs=True)
    replays = tracker._graphs.replays
    syncs, result = _synchronising_calls(tracker, video[0][NUM_FRAMES])
    assert syncs == [], syncs
    assert tracker._graphs.replays - replays == 3  # encoder, one batched step, results
    assert len(result.objects) == 3


def test_cuda_graphs_with_compile(video):
    model = unit_model().cuda()
    _, eager = run_session(model, video, frames=NUM_FRAMES, objects=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker, both = run_session(
            model, video, frames=NUM_FRAMES, objects=2, max_objects=2, warmup=True, compile=True, cuda_graphs=True
        )
    assert not tracker._graphs._failed and tracker._graphs.replays > 2 * NUM_FRAMES
    for a, b in zip(eager, both):
        for obj_id, ra in a.objects.items():
            assert _mask_iou(ra.mask, b.objects[obj_id].mask) >= 0.99


def test_cuda_graphs_follow_option_changes(video):
    """Changing post-processing on a live tracker changes what the replayed results give
    (the results graphs are per setting), like the eager tracker."""
    model = unit_model().cuda()
    results = {}
    for graphs in (False, True):
        tracker, _ = run_session(model, video, frames=NUM_FRAMES, warmup=graphs, cuda_graphs=graphs, fill_hole_area=0)
        tracker.update_options(non_overlap_masks=True, fill_hole_area=8)
        results[graphs] = tracker.track(video[0][NUM_FRAMES])
    for obj_id, ra in results[False].objects.items():
        assert _mask_iou(ra.mask, results[True].objects[obj_id].mask) >= 0.99
    masks = [r.mask for r in results[True].objects.values()]
    assert not any((a & b).any() for i, a in enumerate(masks) for b in masks[i + 1 :])
