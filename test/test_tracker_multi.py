"""Several streams on one model: sessions share the weights, keep their own state, and
``track_many`` (one batched image encoding per round) gives each session the results it
would get tracking alone, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import moving_shapes_video, unit_model

from sam2_model import SAM2Tracker, track_many


@pytest.fixture(scope="module")
def model():
    return unit_model()


def _streams():
    """Three cameras: different scenes, sizes and prompts."""
    return [
        moving_shapes_video(8, 60, 80, seed=1)[0],
        moving_shapes_video(8, 72, 96, seed=2)[0],
        moving_shapes_video(8, 60, 80, seed=3)[0],
    ]


def _prompt(tracker: SAM2Tracker, camera: int) -> None:
    if camera == 0:
        tracker.add_prompt(1, points=[[15, 20]], labels=[1])
        tracker.add_prompt(2, box=[40, 30, 70, 55])
    elif camera == 1:
        tracker.add_prompt(5, box=[10, 10, 40, 40])
    # camera 2 tracks nothing until frame 3


def test_sessions_share_the_model_and_nothing_else(model):
    a = SAM2Tracker(model, history_frames=10)
    b = a.new_session()
    assert b.model is a.model and b.options == a.options
    assert all(
        pa.data_ptr() == pb.data_ptr() for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )
    frames = _streams()
    a.track(frames[0][0])
    a.add_prompt(1, points=[[15, 20]], labels=[1])
    assert b.object_ids == [] and b.frame_index == -1  # b has seen nothing
    b.track(frames[1][0])
    b.add_prompt(1, box=[10, 10, 40, 40])
    b.reset()
    assert a.object_ids == [1] and a.frame_index == 0 and b.object_ids == []


def test_track_many_equals_each_session_alone(model):
    frames = _streams()
    alone = [SAM2Tracker(model, history_frames=10) for _ in frames]
    first = SAM2Tracker(model, history_frames=10)
    sessions = [first, first.new_session(), first.new_session()]
    for t in range(8):
        together = track_many(sessions, [f[t] for f in frames])
        for cam, (tracker, session) in enumerate(zip(alone, sessions, strict=True)):
            expected = tracker.track(frames[cam][t])
            got = together[cam]
            assert got.frame_index == expected.frame_index == t
            assert sorted(got.objects) == sorted(expected.objects), (t, cam)
            for obj_id, r in expected.objects.items():
                g = got.objects[obj_id]
                # the batched encoder may round differently in the last bits; masks must agree
                assert torch.allclose(g.logits, r.logits, atol=1e-4), (t, cam, obj_id)
                assert np.array_equal(g.mask, r.mask), (t, cam, obj_id)
            if t == 0:
                _prompt(tracker, cam)
                _prompt(session, cam)
            if t == 3 and cam == 2:  # a prompt on a past frame of one camera only
                for tr in (tracker, session):
                    tr.add_prompt(7, box=[50, 5, 75, 30], frame_index=1)
    assert [s.object_ids for s in sessions] == [[1, 2], [5], [7]]


def test_track_many_refuses_what_does_not_fit(model):
    a = SAM2Tracker(model)
    other = SAM2Tracker(unit_model(seed=1))
    frame = moving_shapes_video(1, 60, 80)[0][0]
    with pytest.raises(ValueError, match="images: 1 frames for 2 sessions"):
        track_many([a, a.new_session()], [frame])
    with pytest.raises(ValueError, match="sessions: not all on the same model"):
        track_many([a, other], [frame, frame])
    with pytest.raises(ValueError, match="sessions: a session appears twice"):
        track_many([a, a], [frame, frame])
    with pytest.raises(ValueError, match="image"):
        track_many([a, a.new_session()], [frame, frame[:, :, :2]])
    assert a.frame_index == -1  # nothing was tracked
    assert track_many([], []) == []


def test_compiled_sessions_encode_each_round_as_one_compiled_batch(model):
    """With ``compile``, ``warmup(cameras=3)`` compiles the encoder for 1, 2 and 3 frames per
    call: rounds of 3 and of 2 sessions run compiled code, compile nothing more, and give
    each session the results of an eager tracker alone."""
    import warnings

    import torch._dynamo

    frames = _streams()
    alone = [SAM2Tracker(model, history_frames=10) for _ in frames]
    first = SAM2Tracker(model, history_frames=10, max_objects=2, compile=True, compile_backend="aot_eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dynamo's notes on cached helper functions
        first.warmup(cameras=3)
        path = first._compiled
        assert path._encoder_batches == {1, 2, 3}
        sessions = [first, first.new_session(), first.new_session()]
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        batches, encoder = [], path._encoder
        path._encoder = lambda images: (batches.append(images.shape[0]), encoder(images))[1]
        for t in range(6):
            active = [0, 1, 2] if t % 2 == 0 else [0, 2]  # camera 1 skips odd rounds
            together = track_many([sessions[c] for c in active], [frames[c][t] for c in active])
            for cam, got in zip(active, together, strict=True):
                expected = alone[cam].track(frames[cam][t])
                assert sorted(got.objects) == sorted(expected.objects), (t, cam)
                for obj_id, r in expected.objects.items():
                    torch.testing.assert_close(got.objects[obj_id].logits, r.logits, rtol=1e-4, atol=1e-4)
                    assert np.array_equal(got.objects[obj_id].mask, r.mask), (t, cam, obj_id)
                if t == 0:
                    _prompt(alone[cam], cam)
                    _prompt(sessions[cam], cam)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # nothing compiled live
    assert batches == [3, 2, 3, 2, 3, 2]  # one compiled encoder call per round, of its size
    assert path.fallbacks == 0  # no guard failed: every call ran code compiled at warm-up
