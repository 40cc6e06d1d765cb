"""A detector's boxes as prompts, without ROS: the box convention, which detections start,
re-acquire or are ignored (and why), the sightings, the batches held for frames still to
come, and the worker applying them on a real tracker."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from conftest import moving_shapes_video, unit_model

from sam2_model import FrameResult, ObjectResult, SAM2Tracker
from sam2_ros.detector_input import (
    Detection,
    DetectionBatch,
    DetectorSettings,
    PendingBatches,
    Sightings,
    box_iou,
    plan_detections,
)
from sam2_ros.worker import FrameJob, PromptRequest, TrackerWorker

HW = (80, 100)


def det(x0, y0, w, h, class_id="cup", score=0.9) -> Detection:
    """A detection covering pixels x0..x0+w-1, y0..y0+h-1 (centre at x0 + w/2)."""
    return Detection(x0 + w / 2, y0 + h / 2, w, h, class_id, score)


def obj(obj_id, bbox, visible=True, frame=0) -> ObjectResult:
    area = 0 if bbox is None else (bbox[2] - bbox[0] + 1) * (bbox[3] - bbox[1] + 1)
    return ObjectResult(obj_id, frame, np.zeros(HW, bool), None, 2.0 if visible else -2.0, 0.9, not visible, bbox, area)


def frame(*objects, index=0) -> FrameResult:
    return FrameResult(index, {o.obj_id: o for o in objects})


# ---------------------------------------------------------------- boxes
def test_pixel_box_is_the_continuous_box_in_inclusive_pixels():
    assert det(40, 35, 20, 10).pixel_box(HW) == (40.0, 35.0, 59.0, 44.0)
    assert Detection(50.5, 40.0, 3.0, 1.0, "a", 1.0).pixel_box(HW) == (49.0, 39.5, 51.0, 39.5)
    assert det(-10, 70, 30, 30).pixel_box(HW) == (0.0, 70.0, 19.0, 79.0)  # cut to the image
    assert det(0, 0, 100, 80).pixel_box(HW) == (0.0, 0.0, 99.0, 79.0)


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        (Detection(math.nan, 5, 4, 4, "a", 1.0), "bbox.center.position.x: nan is not a finite number"),
        (Detection(5, math.inf, 4, 4, "a", 1.0), "bbox.center.position.y: inf is not a finite number"),
        (Detection(5, 5, -4, 4, "a", 1.0), "bbox.size_x: -4 is not a size of one pixel or more"),
        (Detection(5, 5, 4, math.nan, "a", 1.0), "bbox.size_y: nan is not a size"),
        (Detection(5, 5, 0.5, 4, "a", 1.0), "bbox.size_x: 0.5 is not a size"),
        (Detection(150, 5, 20, 4, "a", 1.0), "bbox: the box \\(140..160 in x\\) is outside the 100x80 image"),
    ],
)
def test_unusable_boxes_name_the_field(detection, message):
    with pytest.raises(ValueError, match=message):
        detection.pixel_box(HW)


def test_box_iou():
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0


# ---------------------------------------------------------------- the plan
def test_new_detections_start_objects_and_tracked_ones_start_nothing():
    on_frame = frame(obj(1, (10, 10, 29, 29)), obj(2, (60, 40, 79, 59), visible=False))
    detections = (
        det(12, 11, 20, 20, score=0.8),  # on object 1 (IoU 0.73)
        det(60, 40, 20, 20, "bottle", 0.6),  # where object 2 is hidden: another class, a new object
        det(40, 5, 10, 10, score=0.95),  # new
        det(41, 6, 10, 10, score=0.7),  # the same thing again, lower score: a duplicate of the new one
        det(0, 60, 10, 10, score=0.49),  # below min_score
    )
    plan = plan_detections(detections, on_frame, HW, {1: "cup", 2: "cup"}, Sightings(), DetectorSettings())
    assert [s.detection for s in plan.starts] == [detections[2], detections[1]]  # best score first
    assert plan.starts[0].box == (40.0, 5.0, 49.0, 14.0)
    assert plan.reacquires == []
    reasons = {i.detection: (i.counter, i.worth_logging) for i in plan.ignored}
    assert reasons == {
        detections[0]: ("tracked", False),
        detections[3]: ("tracked", False),
        detections[4]: ("filtered", False),  # routine: not logged
    }


def test_class_filter_and_bad_values_are_logged_reasons():
    settings = DetectorSettings(classes=frozenset({"cup", "bowl"}))
    detections = (
        det(10, 10, 10, 10, "dog"),
        det(30, 10, 10, 10, "cup", score=None),
        det(50, 10, 10, 10, "cup", score=math.nan),
        Detection(5, 5, -1, 4, "cup", 0.9),
        det(70, 10, 10, 10, "bowl"),
    )
    plan = plan_detections(detections, frame(), HW, {}, Sightings(), settings)
    assert [s.detection.class_id for s in plan.starts] == ["bowl"]
    got = sorted((i.counter, i.reason) for i in plan.ignored if i.worth_logging)
    assert got == [
        ("filtered", "class 'dog' is not in detection_classes [bowl, cup]"),
        ("invalid", "bbox.size_x: -1 is not a size of one pixel or more"),
        ("invalid", "results: empty, the detection has no class or score"),
        ("invalid", "results[].hypothesis.score: nan is not a finite number"),
    ]


def test_a_lost_object_is_reacquired_only_after_reacquire_frames():
    sightings = Sightings()
    sightings.observe(frame(obj(1, (10, 10, 29, 29)), obj(2, (60, 40, 79, 59))))
    for t in range(1, 5):  # object 1 hidden for 4 frames, object 2 still seen
        sightings.observe(frame(obj(1, None, visible=False, frame=t), obj(2, (60, 40, 79, 59), frame=t), index=t))
    assert sightings.get(1).hidden_frames == 4 and sightings.get(1).last_box == (10, 10, 29, 29)
    settings = DetectorSettings(reacquire_frames=5)
    labels = {1: "cup", 2: "cup"}
    latest = frame(obj(1, None, visible=False), obj(2, (60, 40, 79, 59)), index=4)
    near = (det(12, 12, 20, 20),)
    plan = plan_detections(near, latest, HW, labels, sightings, settings)
    assert plan.starts == [] and plan.reacquires == []
    assert plan.ignored[0].counter == "waiting" and "object 1, hidden for 4 < detection_reacquire_frames" in (
        plan.ignored[0].reason
    )
    sightings.observe(frame(obj(1, None, visible=False), obj(2, (60, 40, 79, 59)), index=5))
    plan = plan_detections((*near, det(14, 14, 20, 20, score=0.6)), latest, HW, labels, sightings, settings)
    assert [(r.obj_id, r.box) for r in plan.reacquires] == [(1, (12.0, 12.0, 31.0, 31.0))]
    assert [i.counter for i in plan.ignored] == ["tracked"]  # the second one: on the re-acquired box
    # another class, or far from its last box: a new object
    for other in (det(12, 12, 20, 20, "bowl"), det(50, 0, 20, 20)):
        plan = plan_detections((other,), latest, HW, labels, sightings, settings)
        assert len(plan.starts) == 1 and plan.reacquires == []
    # prompted again: seen again
    sightings.prompted(1, obj(1, (11, 11, 30, 30)))
    assert sightings.get(1).hidden_frames == 0 and sightings.hidden() == {}
    sightings.observe(frame(obj(2, (60, 40, 79, 59))))  # object 1 removed
    assert sightings.get(1) is None


def test_pending_batches_wait_for_their_frame():
    pending = PendingBatches(capacity=2)
    a, b, c = (DetectionBatch(s, (det(1, 1, 5, 5),)) for s in (10, 20, 30))
    assert pending.hold(a) == [] and pending.hold(b) == []
    assert pending.hold(c) == [a]  # pushed out
    assert pending.release(25) == ([], [b]) and len(pending) == 1  # 20 will never come
    assert pending.release(30) == ([c], []) and len(pending) == 0


# ---------------------------------------------------------------- the worker
@pytest.fixture(scope="module")
def video():
    return moving_shapes_video(12, 60, 80, seed=3)


def test_worker_applies_late_boxes_on_their_frame_and_holds_early_ones(video):
    frames, _ = video
    reports, published = [], []
    tracker = SAM2Tracker(unit_model(), history_frames=10, max_objects=2)
    worker = TrackerWorker(tracker, lambda j, r: published.append(r), lambda m: None, None, reports.append)
    # random weights give masks anywhere: no detection here is on a tracked object
    worker.detector_settings = DetectorSettings(match_iou=1.01)
    reference = SAM2Tracker(unit_model(), history_frames=10, max_objects=2)
    worker.start()

    def wait(condition):
        end = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < end, "timed out"
            time.sleep(0.005)

    def feed(t):  # frame t has stamp 1000 + 10 t
        worker.submit_frame(FrameJob.of_array(frames[t], 1000 + 10 * t, f"h{t}", time.monotonic()))
        reference.track(frames[t])
        wait(lambda: len(published) == t + 1)

    try:
        for t in range(4):
            feed(t)
        worker.add_detections(DetectionBatch(1010, (det(40, 30, 31, 26, "block"),)))  # a late detector
        wait(lambda: len(reports) == 1)
        expected = reference.add_prompt(1, box=[40.0, 30.0, 70.0, 55.0], frame_index=1)
        assert reports[0].done == [
            f"'block' detected: object 1 started on frame 1, tracked forward to frame 3 "
            f"(area {expected.area} px on frame 1)"
        ]
        assert reports[0].problems == [] and worker.camera().label(1) == "block"
        # a fast detector: boxes for frame 4 before the tracker took it, and for a frame never sent
        worker.add_detections(DetectionBatch(1040, (det(5, 5, 20, 20, "disc"), det(50, 5, 20, 20, "x"))))
        worker.add_detections(DetectionBatch(1035, (det(5, 40, 10, 10),)))
        worker.add_detections(DetectionBatch(1040, ()))  # nothing detected: nothing to do
        feed(4)
        wait(lambda: len(reports) == 3)
        never, fast = reports[1], reports[2]  # expired as frame 4 came, then applied on frame 4
        assert never.done == [] and [p.key for p in never.problems] == ["unbuffered"]
        assert never.problems[0].message.startswith("detections stamped 0.000001035 ignored: no buffered frame")
        disc = reference.add_prompt(2, box=[5.0, 5.0, 24.0, 24.0], frame_index=4)
        assert fast.done == [f"'disc' detected: object 2 started on frame 4 (area {disc.area} px on frame 4)"]
        assert [p.message for p in fast.problems] == [
            "detection of 'x' not applied: object_id: already tracking max_objects=2 objects"
        ]
        s = worker.camera().detector_stats
        assert (s.received, s.started, s.refused, s.unbuffered) == (4, 2, 1, 1)
        for t in range(5, 8):  # the worker's masks are those of the tracker driven by hand
            feed(t)
            expected = reference.frame_result(t).objects
            assert sorted(published[t].objects) == [1, 2]
            for i in (1, 2):
                assert np.array_equal(published[t].objects[i].mask, expected[i].mask), (t, i)
        assert worker.reset().result(10).success
        assert worker.camera().tracker.object_ids == [] and worker.camera().label(1) == ""
    finally:
        worker.stop()


def test_worker_reacquires_a_lost_object_with_its_id(video):
    """The worker's side of re-acquiring: an object hidden for ``reacquire_frames`` is
    re-prompted with the matching box and keeps its id (visibility comes from the tracker;
    here the sightings are set as a hidden object would leave them)."""
    frames, _ = video
    reports, published = [], []
    tracker = SAM2Tracker(unit_model(), history_frames=10)
    worker = TrackerWorker(tracker, lambda j, r: published.append(r), lambda m: None, None, reports.append)
    worker.start()
    try:
        worker.submit_frame(FrameJob.of_array(frames[0], 1000, "h0", time.monotonic()))
        end = time.monotonic() + 20
        while not published:
            assert time.monotonic() < end
            time.sleep(0.005)
        out = worker.add_prompt(PromptRequest(obj_id=7, stamp_ns=0, label="cup", box=[40, 30, 70, 55])).result(10)
        assert out.success
        sighting = worker.camera()._sightings.get(7)
        sighting.hidden_frames, sighting.last_box = 15, (10.0, 10.0, 29.0, 29.0)  # lost there 15 frames ago
        worker.detector_settings = DetectorSettings(reacquire_frames=15)
        # on frame 0 object 7 is still where it was prompted; the detection is where it was lost
        worker.add_detections(DetectionBatch(1000, (det(12, 12, 20, 20, "cup"),)))
        end = time.monotonic() + 20
        while not reports:
            assert time.monotonic() < end
            time.sleep(0.005)
        assert (
            reports[0].done and "'cup' detected again, re-acquired: object 7 refined on frame 0" in (reports[0].done[0])
        )
        assert worker.camera().tracker.object_ids == [7] and worker.camera().detector_stats.reacquired == 1
        assert worker.camera()._sightings.get(7).hidden_frames == 0
    finally:
        worker.stop()
