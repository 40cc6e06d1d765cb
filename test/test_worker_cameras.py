"""The worker with several cameras on one model (no ROS): each round takes the newest
waiting frame of every camera and tracks them in one batch, with the results each camera
would get alone; prompts, removals and resets act on their camera only; a flooding camera
does not starve a slow one; a bad frame on one camera costs the other nothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import moving_shapes_video, unit_model

from sam2_model import SAM2Tracker
from sam2_ros.worker import FrameJob, PromptRequest, TrackerWorker


@pytest.fixture(scope="module")
def model():
    return unit_model()


class Published:
    """Results by camera, in order, and a way to wait for them."""

    def __init__(self):
        self.by_camera: dict[str, list] = {}
        self._cond = threading.Condition()

    def __call__(self, job, result):
        with self._cond:
            self.by_camera.setdefault(job.camera, []).append((job.stamp_ns, result))
            self._cond.notify_all()

    def wait(self, camera, count, timeout=30.0):
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.by_camera.get(camera, [])) >= count, timeout)
        assert ok, f"camera {camera}: {len(self.by_camera.get(camera, []))} results, expected {count}"
        return self.by_camera[camera][count - 1][1]


def _worker(model, published, cameras=("front", "wrist"), errors=None):
    tracker = SAM2Tracker(model, history_frames=10)
    log = errors.append if errors is not None else (lambda m: None)
    worker = TrackerWorker(tracker, published, log, cameras=cameras)
    worker.start()
    return worker


def _job(frame, stamp, camera):
    return FrameJob.of_array(frame, stamp, f"h{stamp}", time.monotonic(), camera=camera)


def test_each_camera_gets_what_it_would_get_alone(model):
    front, _ = moving_shapes_video(6, 60, 80, seed=1)
    wrist, _ = moving_shapes_video(6, 72, 96, seed=2)
    refs = {"front": SAM2Tracker(model, history_frames=10), "wrist": SAM2Tracker(model, history_frames=10)}
    published = Published()
    worker = _worker(model, published)
    try:
        for t in range(6):
            worker.submit_frame(_job(front[t], 1000 + t, "front"))
            worker.submit_frame(_job(wrist[t], 2000 + t, "wrist"))
            got = {c: published.wait(c, t + 1) for c in refs}
            want = {"front": refs["front"].track(front[t]), "wrist": refs["wrist"].track(wrist[t])}
            if t == 1:  # the same object id on both cameras: two different objects
                for camera, box in (("front", [10, 10, 40, 40]), ("wrist", [30, 20, 70, 60])):
                    outcome = worker.add_prompt(PromptRequest(3, 0, camera, box=box, camera=camera)).result(30)
                    assert outcome.success and outcome.label == camera, outcome.message
                    refs[camera].add_prompt(3, box=box)
            for camera in refs:
                assert got[camera].frame_index == want[camera].frame_index == t
                assert list(got[camera].objects) == list(want[camera].objects)
                for i, obj in want[camera].objects.items():
                    assert np.array_equal(got[camera].objects[i].mask, obj.mask), (camera, t, i)
        assert worker.camera("front").label(3) == "front" and worker.camera("wrist").label(3) == "wrist"
        assert worker.rounds.mean_batch > 1.0  # both cameras' frames went through the encoder together
        assert {c: worker.camera(c).stats.frames_processed for c in refs} == {"front": 6, "wrist": 6}
    finally:
        worker.stop()


def test_remove_and_reset_act_on_their_camera_only(model):
    frames, _ = moving_shapes_video(4, 60, 80, seed=3)
    published = Published()
    worker = _worker(model, published)
    try:
        for camera in ("front", "wrist"):
            worker.submit_frame(_job(frames[0], 10, camera))
            published.wait(camera, 1)
            for obj_id in (1, 2):
                req = PromptRequest(obj_id, 10, box=[5 + 20 * obj_id, 5, 30 + 20 * obj_id, 40], camera=camera)
                assert worker.add_prompt(req).result(30).success
        assert worker.remove_object(1, "front").result(30).success
        assert worker.camera("front").tracker.object_ids == [2]
        assert worker.camera("wrist").tracker.object_ids == [1, 2]
        answer = worker.reset("wrist").result(30)
        assert answer.success and worker.camera("wrist").tracker.object_ids == []
        assert worker.camera("wrist").tracker.frame_index == -1
        assert worker.camera("front").tracker.object_ids == [2] and worker.camera("front").tracker.frame_index == 0
        # a prompt on the reset camera's old frame: that frame is gone there, not on front
        old = worker.add_prompt(PromptRequest(4, 10, box=[5, 5, 20, 20], camera="wrist")).result(30)
        assert not old.success and old.message.startswith("stamp: no frame has been processed yet")
        answer = worker.reset().result(30)
        assert answer.message == "every camera reset (front, wrist): no objects, frame counts restarted"
        assert worker.camera("front").tracker.object_ids == []
    finally:
        worker.stop()


def test_camera_names_are_checked_and_named_in_the_answer(model):
    published = Published()
    worker = _worker(model, published)
    try:
        for camera, expected in (
            ("", "camera: empty, but this node tracks 2 cameras; name one of front, wrist"),
            ("rear", "camera: 'rear' is unknown; the cameras are front, wrist"),
        ):
            outcome = worker.add_prompt(PromptRequest(1, 0, box=[1, 1, 5, 5], camera=camera)).result(5)
            assert (outcome.success, outcome.message) == (False, expected)
            assert worker.remove_object(1, camera).result(5).message == expected
            assert worker.reset(camera).result(5).message == expected
            with pytest.raises(ValueError, match=r"^camera: "):
                worker.camera(camera)
    finally:
        worker.stop()
    single = TrackerWorker(SAM2Tracker(model), published, lambda m: None)
    assert single.camera("") is single.camera()
    with pytest.raises(ValueError, match="camera: 'front' is unknown; this node has one unnamed camera"):
        single.camera("front")


def test_a_flooding_camera_does_not_starve_a_slow_one(model):
    """front sends frames as fast as it can; wrist one frame now and then: every wrist frame
    is tracked in the round after it arrives, beside front's newest."""
    front, _ = moving_shapes_video(2, 60, 80, seed=4)
    wrist, _ = moving_shapes_video(3, 60, 80, seed=5)
    published = Published()
    worker = _worker(model, published)
    stop = threading.Event()

    def flood():
        t = 0
        while not stop.is_set():
            worker.submit_frame(_job(front[t % 2], 10_000 + t, "front"))
            t += 1
            time.sleep(0.0005)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        for t in range(3):
            worker.submit_frame(_job(wrist[t], 500 + t, "wrist"))
            result = published.wait("wrist", t + 1, timeout=10)
            assert result.frame_index == t
        assert worker.camera("wrist").stats.frames_dropped == 0
    finally:
        stop.set()
        flooder.join()
        worker.stop()
    front_stats = worker.camera("front").stats
    assert front_stats.frames_dropped > 0 and front_stats.frames_processed >= 3


def test_a_bad_frame_on_one_camera_costs_the_other_nothing(model):
    frames, _ = moving_shapes_video(2, 60, 80, seed=6)
    published, errors = Published(), []
    worker = _worker(model, published, errors=errors)
    try:
        worker.stop()  # queue both frames, then run one round with both
        worker.submit_frame(_job(frames[0], 1, "front"))
        worker.submit_frame(_job(np.zeros((60, 80), np.uint8), 2, "wrist"))  # not RGB
        worker.start()
        assert published.wait("front", 1).frame_index == 0
        worker.submit_frame(_job(frames[1], 3, "wrist"))  # the next good frame is fine
        assert published.wait("wrist", 1).frame_index == 0
    finally:
        worker.stop()
    assert worker.camera("wrist").stats.frames_failed == 1 and worker.camera("front").stats.frames_failed == 0
    assert errors == ["frame skipped on camera wrist: ValueError: image: expected shape HxWx3 (RGB), got (60, 80)"]
