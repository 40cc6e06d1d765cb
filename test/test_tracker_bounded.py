"""A long stream: the tracker's memory stays bounded (2,000 frames, 3 objects)."""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pytest
from conftest import moving_shapes_video, unit_model

from sam2_model import SAM2Tracker

NUM_FRAMES = 2000
WARMUP = 100  # the history buffer (60 frames) and the pointer windows are full by then
HISTORY = 60


@pytest.mark.slow
def test_memory_is_flat_over_2000_frames():
    model = unit_model(image_size=64)
    frames, masks = moving_shapes_video(40, 48, 64, seed=2)
    tracker = SAM2Tracker(model, history_frames=HISTORY, max_conditioning_frames=4)
    process = psutil.Process()
    stats_bytes, rss = [], []
    for t in range(NUM_FRAMES):
        tracker.track(frames[t % len(frames)])
        if t == 0:
            tracker.add_prompt(1, points=[[12, 14]], labels=[1])
            tracker.add_prompt(2, box=[30, 25, 60, 45])
        if t == 5:
            tracker.add_prompt(3, mask=masks[5][3])
        if t % 250 == 10:  # keep prompting: corrections, a past frame, the cond-frame cap
            tracker.add_prompt(1, points=[[20, 20]], labels=[1])
            tracker.add_prompt(2, points=[[40, 30]], labels=[0], frame_index=t - 8)
        if t >= WARMUP and t % 50 == 0:
            s = tracker.stats()
            stats_bytes.append(s.total_bytes)
            gc.collect()
            rss.append(process.memory_info().rss)
            assert s.history_frames == HISTORY
            for obj_id, o in s.per_object.items():
                assert o.recent_memories <= 6, obj_id
                assert o.recent_pointers <= 15, obj_id
                assert o.conditioning_frames <= 4, obj_id
                assert o.history_outputs <= HISTORY, obj_id

    s = tracker.stats()
    assert s.frames_processed == NUM_FRAMES and s.objects == 3
    # the bytes the tracker holds do not grow: every sample within 1% of the first
    assert max(stats_bytes) <= stats_bytes[0] * 1.01, stats_bytes
    assert min(stats_bytes) >= stats_bytes[0] * 0.99, stats_bytes
    # nor does the process: the last quarter is not above the second quarter (+8 MB slack
    # for allocator noise), and there is no upward trend
    quarter = len(rss) // 4
    assert max(rss[-quarter:]) <= max(rss[quarter : 2 * quarter]) + 8 * 2**20, [r // 2**20 for r in rss]
    slope = np.polyfit(np.arange(len(rss)), np.array(rss) / 2**20, 1)[0]
    assert slope * len(rss) < 8, f"RSS grows by {slope * len(rss):.1f} MB over the run"
