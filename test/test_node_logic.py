"""The node's plain-Python parts (no ROS transport): image/mask codecs, the inference
worker with a real tracker, the overlay, and the parameter specs vs config/tracker.yaml."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import moving_shapes_video, unit_model

from sam2_model import SAM2Tracker
from sam2_ros.image_codec import (
    box_from_roi,
    check_image,
    crop_mask,
    decode_image,
    decode_mask,
    label_image,
    roi_from_bbox,
    uncrop_mask,
)
from sam2_ros.overlay import object_colour, overlay_text, render_overlay
from sam2_ros.params import PARAMS, NodeParams
from sam2_ros.worker import FrameJob, PromptRequest, TrackerWorker

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- image codec
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_decode_image_encodings_with_padded_rows(encoding):
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    if encoding == "mono8":
        pixels, rgb = rgb[:, :, :1], np.repeat(rgb[:, :, :1], 3, axis=2)
    else:
        order = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2], "bgra8": [2, 1, 0]}[encoding]
        pixels = rgb[:, :, order]
        if encoding.endswith("a8"):
            pixels = np.concatenate((pixels, np.full((5, 7, 1), 9, np.uint8)), axis=2)
    c = pixels.shape[2]
    step = 7 * c + 3  # padded rows are valid
    data = np.zeros((5, step), np.uint8)
    data[:, : 7 * c] = pixels.reshape(5, -1)
    assert np.array_equal(decode_image(encoding, 5, 7, step, data.tobytes()), rgb)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nv12", 2, 2, 4, bytes(8)), "image: unsupported encoding 'nv12'"),
        (("rgb8", 0, 4, 12, b""), "image: empty image"),
        (("rgb8", 2, 4, 10, bytes(20)), "image: step 10 is smaller than width\\*channels = 12"),
        (("rgb8", 2, 4, 12, bytes(23)), "image: data has 23 bytes, expected step\\*height = 24"),
    ],
)
def test_decode_image_errors_name_the_field(args, message):
    with pytest.raises(ValueError, match=message):
        decode_image(*args)
    encoding, h, w, step, data = args
    with pytest.raises(ValueError, match=message):  # the node's cheap check, on every frame
        check_image(encoding, h, w, step, len(data))


def test_rgb8_frames_are_decoded_without_a_copy():
    """An unpadded rgb8 frame is tracked from the message's own bytes (read-only)."""
    data = bytearray(np.arange(2 * 4 * 3, dtype=np.uint8).tobytes())
    rgb = decode_image("rgb8", 2, 4, 12, data)
    assert np.shares_memory(rgb, np.frombuffer(data, np.uint8)) and not rgb.flags.writeable
    assert rgb.flags.c_contiguous and rgb[1, 3].tolist() == [21, 22, 23]
    check_image("rgb8", 2, 4, 12, len(data))  # valid: no error


def test_decode_mask():
    data = np.array([[0, 7, 0], [255, 0, 0]], np.uint8)
    assert decode_mask("mono8", 2, 3, 3, data.tobytes(), (2, 3)).tolist() == [
        [False, True, False],
        [True, False, False],
    ]
    with pytest.raises(ValueError, match="mask: expected encoding mono8, got 'rgb8'"):
        decode_mask("rgb8", 2, 3, 9, bytes(18), (2, 3))
    with pytest.raises(ValueError, match="mask: size 3x2 differs from the frame's 4x2"):
        decode_mask("mono8", 2, 3, 3, bytes(6), (2, 4))


def test_uncrop_mask_inverts_crop_mask():
    rng = np.random.default_rng(4)
    mask = np.zeros((30, 40), bool)
    mask[5:17, 9:31] = rng.random((12, 22)) > 0.4
    ys, xs = np.nonzero(mask)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    back = uncrop_mask(crop_mask(mask, bbox), roi_from_bbox(bbox), (30, 40))
    assert np.array_equal(back, mask)
    empty = uncrop_mask(crop_mask(mask, None), roi_from_bbox(None), (30, 40))
    assert empty.shape == (30, 40) and not empty.any()


def test_masks_boxes_and_label_image():
    a = np.zeros((6, 8), bool)
    a[1:3, 2:5] = True
    b = np.zeros((6, 8), bool)
    b[2:5, 4:7] = True
    labels = label_image({3: a, 7: b}, (6, 8))
    assert labels[1, 2] == 3 and labels[4, 6] == 7 and labels[2, 4] == 7  # overlap: higher id
    assert labels[0, 0] == 0 and labels.dtype == np.uint8
    crop = crop_mask(a, (2, 1, 4, 2))
    assert crop.shape == (2, 3) and np.all(crop == 255)
    assert crop_mask(a, None).shape == (0, 0)
    assert roi_from_bbox((2, 1, 4, 2)) == (2, 1, 3, 2) and roi_from_bbox(None) == (0, 0, 0, 0)
    assert box_from_roi(2, 1, 3, 2) == [2.0, 1.0, 4.0, 2.0]  # round trip
    with pytest.raises(ValueError, match=r"box: width and height must both be positive, got 3x0"):
        box_from_roi(6, 1, 3, 0)


# a RegionOfInterest on a 80x60 frame -> accepted?
ROI_CASES = [
    ((0, 0, 80, 60), True),  # the whole frame
    ((79, 59, 1, 1), True),  # the last pixel
    ((60, 0, 21, 10), False),  # ends one pixel past the right edge
    ((80, 0, 1, 1), False),  # starts past the right edge
    ((0, 60, 1, 1), False),  # starts past the bottom edge
    ((0, 50, 10, 11), False),  # ends one pixel past the bottom edge
]


@pytest.mark.parametrize(("roi", "ok"), ROI_CASES, ids=[str(c[0]) for c in ROI_CASES])
def test_a_box_past_the_frame_is_refused_by_the_tracker(video, roi, ok):
    """One rule for ROS and Python users: a box's corners are pixels of the frame."""
    frames, _ = video
    tracker = SAM2Tracker(unit_model())
    tracker.track(frames[0])
    box = box_from_roi(*roi)
    if ok:
        assert tracker.add_prompt(1, box=box).area > 0
        return
    with pytest.raises(ValueError, match=r"^box: .* is not inside the 80x60 image \(.*x in 0\.\.79, y in 0\.\.59\)"):
        tracker.add_prompt(1, box=box)
    assert tracker.object_ids == []  # nothing started


# ---------------------------------------------------------------- worker
@pytest.fixture(scope="module")
def video():
    return moving_shapes_video(30, 60, 80, seed=3)


def _worker(published):
    tracker = SAM2Tracker(unit_model(), history_frames=10)
    return TrackerWorker(tracker, lambda job, result: published.append((job, result)), lambda msg: None)


def _started_after_four_frames(published, frames):
    """A running worker that has tracked ``frames[:4]`` (stamps 1000..1003, headers h0..h3)."""
    worker = _worker(published)
    worker.start()
    for t in range(4):
        worker.submit_frame(FrameJob.of_array(frames[t], 1000 + t, f"h{t}", time.monotonic()))
        _wait_for(lambda t=t: len(published) == t + 1)
    return worker


def _wait_for(condition, timeout=20.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_worker_keeps_only_the_newest_frame(video):
    frames, _ = video
    published = []
    worker = _worker(published)
    for t in range(10):  # queued before the thread starts: only the last one is tracked
        worker.submit_frame(FrameJob.of_array(frames[t], t + 1, f"h{t}", time.monotonic()))
    worker.start()
    _wait_for(lambda: len(published) == 1)
    time.sleep(0.1)
    worker.stop()
    assert [job.header for job, _ in published] == ["h9"]
    assert worker.camera().stats.frames_received == 10 and worker.camera().stats.frames_dropped == 9


def test_a_replaced_frame_is_never_decoded(video):
    """Frames are decoded when the inference thread takes them: of ten frames that replace
    each other while the tracker is busy, only the one it takes is decoded."""
    frames, _ = video
    published, decoded = [], []

    def job(t):
        return FrameJob(lambda: (decoded.append(t), frames[t])[1], t + 1, f"h{t}", time.monotonic())

    worker = _worker(published)
    for t in range(10):  # queued before the thread starts
        worker.submit_frame(job(t))
    worker.start()
    _wait_for(lambda: len(published) == 1)
    worker.submit_frame(job(10))
    _wait_for(lambda: len(published) == 2)
    worker.stop()
    assert decoded == [9, 10] and worker.camera().stats.frames_decoded == 2
    assert published[0][0].image is frames[9]  # the decoded pixels go with the result


def test_worker_prompts_by_stamp_between_frames(video):
    frames, _ = video
    published = []
    worker = _started_after_four_frames(published, frames)
    try:
        out = worker.add_prompt(
            PromptRequest(obj_id=4, stamp_ns=0, points=np.array([[15, 20]]), labels=np.array([1]), label="cup")
        ).result(10)
        assert out.success and out.result.frame_index == 3 and out.header == "h3" and out.label == "cup"
        past = worker.add_prompt(PromptRequest(obj_id=5, stamp_ns=1001, box=[40, 30, 70, 55])).result(10)
        assert past.success and past.result.frame_index == 1 and past.header == "h1"
        worker.submit_frame(FrameJob.of_array(frames[4], 1004, "h4", time.monotonic()))
        _wait_for(lambda: len(published) == 5)
        assert sorted(published[-1][1].objects) == [4, 5] and worker.camera().label(4) == "cup"
        unknown = worker.add_prompt(
            PromptRequest(obj_id=6, stamp_ns=5, points=np.array([[1, 1]]), labels=np.array([1]))
        ).result(10)
        assert not unknown.success
        assert "stamp: no buffered frame has stamp 0.000000005" in unknown.message
        assert "the oldest is 0.000 s older than the latest" in unknown.message
        clicked = worker.add_prompt(
            PromptRequest(obj_id=None, stamp_ns=0, points=np.array([[60, 40]]), labels=np.array([1]))
        ).result(10)
        assert clicked.success and clicked.result.obj_id == 1  # the smallest free id
        bad = worker.add_prompt(
            PromptRequest(obj_id=4, stamp_ns=0, points=np.array([[1, 1]]), labels=np.array([1, 0]))
        ).result(10)
        assert not bad.success and bad.message.startswith("point_labels: got 2 labels for 1 points")
        assert not worker.remove_object(9).result(10).success
        assert worker.remove_object(5).result(10).success
        assert worker.reset().result(10).success and worker.camera().tracker.object_ids == []
    finally:
        worker.stop()
    assert not worker.add_prompt(PromptRequest(obj_id=1, stamp_ns=0)).result(1).success  # stopped


def test_worker_says_what_a_prompt_did(video):
    """A new id is "started" (also on a past frame, then tracked forward); an existing id
    is "refined"."""
    frames, _ = video
    published = []
    worker = _started_after_four_frames(published, frames)
    try:

        def prompt(obj_id, stamp_ns):
            req = PromptRequest(obj_id=obj_id, stamp_ns=stamp_ns, points=np.array([[15, 20]]), labels=np.array([1]))
            out = worker.add_prompt(req).result(10)
            assert out.success, out.message
            return out.message.split(" (area ")[0], out.result.area, out.message

        head, area, message = prompt(2, 1001)
        assert head == "object 2 started on frame 1, tracked forward to frame 3"
        assert message.endswith(f"(area {area} px on frame 1)")
        assert prompt(2, 1002)[0] == "object 2 refined on frame 2, re-tracked forward to frame 3"
        assert prompt(2, 0)[0] == "object 2 refined on frame 3"
        assert prompt(3, 0)[0] == "object 3 started on frame 3"
    finally:
        worker.stop()


def test_worker_survives_a_failing_publisher(video):
    frames, _ = video
    errors = []

    def publish(job, result):
        raise RuntimeError("broken publisher")

    worker = TrackerWorker(SAM2Tracker(unit_model()), publish, errors.append)
    worker.start()
    for t in range(3):
        worker.submit_frame(FrameJob.of_array(frames[t], t + 1, None, time.monotonic()))
        _wait_for(lambda t=t: worker.camera().stats.frames_processed == t + 1)
    worker.stop()
    assert len(errors) == 3 and "broken publisher" in errors[0]


def test_worker_runs_on_the_thread_that_built_the_model(video):
    """With an executor, the tracking (and prompts) run on its one thread, the thread the
    node builds and warms up the model on: one OpenMP pool per process (see sam2_ros.worker);
    the worker can be stopped and started again on it."""
    frames, _ = video
    inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
    tracker = inference.submit(lambda: SAM2Tracker(unit_model())).result()
    built_on = inference.submit(lambda: threading.current_thread().name).result()
    names, published = [], []
    track = tracker.track
    tracker.track = lambda image: (names.append(threading.current_thread().name), track(image))[1]
    worker = TrackerWorker(
        tracker, lambda job, result: published.append(threading.current_thread().name), print, inference
    )
    try:
        for round_ in range(2):
            worker.start()
            worker.submit_frame(FrameJob.of_array(frames[round_], round_ + 1, None, time.monotonic()))
            _wait_for(lambda n=round_: len(names) == n + 1)
            out = worker.add_prompt(PromptRequest(obj_id=1, stamp_ns=0, box=[10, 10, 40, 40])).result(10)
            assert out.success
            worker.stop()
    finally:
        inference.shutdown()
    assert names == [built_on, built_on] and built_on.startswith("inference")
    assert published == ["sam2_tracker_publisher"] * 2  # messages are built and sent off that thread


def test_a_slow_publisher_gets_every_result_in_order(video):
    """Publishing runs beside tracking; when it falls behind, tracking waits: no result is lost."""
    frames, _ = video
    published = []

    def publish(job, result):
        time.sleep(0.05)
        published.append((job.header, result.frame_index))

    worker = TrackerWorker(SAM2Tracker(unit_model()), publish, lambda msg: None)
    worker.start()
    try:
        for t in range(6):  # each frame waits until the previous one is tracked: none dropped
            worker.submit_frame(FrameJob.of_array(frames[t], t + 1, f"h{t}", time.monotonic()))
            _wait_for(lambda t=t: worker.camera().stats.frames_processed == t + 1)
        assert len(published) < 6  # the tracker ran ahead of the publisher
    finally:
        worker.stop()  # publishes what is left first
    assert published == [(f"h{t}", t) for t in range(6)]


def test_worker_measures_its_processing_time(video):
    """processing_ms is the time spent per frame by the slower stage, not the time between
    frames: a slow publisher (50 ms) shows in it, long pauses in the input do not."""
    frames, _ = video
    published = []

    def publish(job, result):
        time.sleep(0.05)
        published.append(job)

    worker = TrackerWorker(SAM2Tracker(unit_model()), publish, lambda msg: None)
    worker.start()
    try:
        for t in range(3):
            worker.submit_frame(FrameJob.of_array(frames[t], t + 1, None, time.monotonic()))
            _wait_for(lambda t=t: len(published) == t + 1)
            time.sleep(0.3)  # the input pauses
    finally:
        worker.stop()
    stats = worker.camera().stats
    assert 50 <= stats.publishing_ms == stats.processing_ms < 300
    assert 0 < stats.tracking_ms < stats.publishing_ms  # the unit model tracks in a few ms
    assert stats.rate_hz < 1e3 / 300  # the output rate includes the pauses


def test_worker_answers_prompts_while_frames_flood(video):
    frames, _ = video
    published = []
    worker = _worker(published)
    worker.start()
    stop = threading.Event()

    def flood():
        t = 0
        while not stop.is_set():
            worker.submit_frame(FrameJob.of_array(frames[t % 30], 10 + t, None, time.monotonic()))
            t += 1
            time.sleep(0.001)

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        _wait_for(lambda: len(published) >= 2)
        out = worker.add_prompt(
            PromptRequest(obj_id=1, stamp_ns=0, points=np.array([[15, 20]]), labels=np.array([1]))
        ).result(10)
        assert out.success
    finally:
        stop.set()
        thread.join()
        worker.stop()
    assert worker.camera().stats.frames_dropped > 0


# ---------------------------------------------------------------- overlay
def test_overlay_draws_masks_boxes_and_occlusion(video):
    frames, _ = video
    tracker = SAM2Tracker(unit_model())
    tracker.track(frames[0])
    tracker.add_prompt(2, points=[[15, 20]], labels=[1])
    result = tracker.track(frames[1])
    o = result.objects[2]
    image = np.full((60, 80, 3), 100, np.uint8)
    out = render_overlay(image, result.objects, {2: "cup"})
    assert out.shape == image.shape and out.dtype == np.uint8
    x0, y0, x1, y1 = o.bbox
    yy, xx = np.mgrid[:60, :80]
    interior = o.mask & (xx >= x0 + 3) & (xx <= x1 - 3) & (yy >= y0 + 14) & (yy <= y1 - 3)  # off box and text
    assert interior.any()
    expected = (0.5 * 100 + 0.5 * np.array(object_colour(2))).astype(np.uint8)
    assert np.abs(out[interior].astype(int) - expected).max() <= 1  # tinted
    near = (yy >= y0 - 14) & (yy <= y1 + 2) & (xx >= x0 - 2) & (xx <= max(x1, x0 + 40) + 2)
    untouched = ~o.mask & ~near
    assert np.array_equal(out[untouched], image[untouched])  # nothing drawn elsewhere
    assert tuple(out[y1, (x0 + x1) // 2]) == object_colour(2)  # the box's bottom edge
    occluded = type(o)(**{**o.__dict__, "occluded": True, "bbox": None, "area": 0, "mask": np.zeros_like(o.mask)})
    out = render_overlay(image, {2: occluded}, {2: "cup"})
    corner, background = out[:14].reshape(-1, 3).astype(int), 100
    text = corner[np.any(corner != background, axis=1)]  # antialiased text in the object's colour
    assert len(text) > 10
    assert text[:, 0].mean() > background > text[:, 2].mean()  # colour 2 is (255, 225, 25)
    assert np.array_equal(out[14:], image[14:])


def test_overlay_draws_at_most_a_line_of_a_label(video, monkeypatch):
    """Labels are free text from clients: a 100 kB one is cut to a line of the image."""
    from PIL import ImageDraw

    drawn = []
    draw_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(
        ImageDraw.ImageDraw, "text", lambda self, xy, text, **kw: (drawn.append(text), draw_text(self, xy, text, **kw))
    )
    frames, _ = video
    tracker = SAM2Tracker(unit_model())
    tracker.track(frames[0])
    tracker.add_prompt(2, points=[[15, 20]], labels=[1])
    objects = tracker.track(frames[1]).objects
    occluded = dataclasses.replace(objects[2], occluded=True, bbox=None, area=0, mask=np.zeros_like(objects[2].mask))
    huge = "x" * 100_000
    render_overlay(frames[1], {**objects, 3: dataclasses.replace(occluded, obj_id=3)}, {2: huge, 3: huge})
    assert len(drawn) == 2 and all(text.endswith("...") and len(text) <= 80 // 6 for text in drawn)
    assert drawn[0].startswith("2 xxx") and drawn[1].startswith("3 xxx")
    assert overlay_text(7, "cup", ": occluded", 640) == "7 cup: occluded"  # short labels stay whole
    assert overlay_text(7, "", "", 640) == "7"


# ---------------------------------------------------------------- parameters
def test_params_yaml_matches_the_declared_defaults():
    data = yaml.safe_load((ROOT / "config" / "tracker.yaml").read_text())
    (values,) = [v["ros__parameters"] for v in data.values()]
    assert values == {p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in PARAMS}
    params = NodeParams.from_values(values)
    params.validate()
    with pytest.raises(ValueError, match="parameter precision: 'fp64'"):
        NodeParams.from_values({"precision": "fp64"}).validate()
    model_params = {"model_config", "checkpoint", "device", "image_size", "precision"}
    assert all(p.read_only for p in PARAMS if p.name in model_params)
    assert next(p for p in PARAMS if p.name == "fill_hole_area").int_range == (0, 1024, 1)
