"""The tracker node as a user's planner sees it: its own process, real ROS 2 transport.

A tiny random-weight SAM 2.1 checkpoint (object-score head shifted so objects are visible)
at 128 px on CPU keeps the node fast enough for these checks.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from conftest import moving_shapes_video, requires_ros2
from ros_helpers import NodeProcess, RosClient

from sam2_model import build_sam2, save_checkpoint

pytestmark = pytest.mark.ros

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Point, PointStamped  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image, RegionOfInterest  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from sam2_ros.conversions import object_mask, stamp_to_ns  # noqa: E402
from sam2_ros.msg import TrackedObjectArray  # noqa: E402
from sam2_ros.params import PARAMS  # noqa: E402
from sam2_ros.srv import AddPrompt, RemoveObject  # noqa: E402

H, W = 96, 128
NS = "/sam2_tracker"


@pytest.fixture(scope="session")
def visible_checkpoint(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    model = build_sam2("sam2.1_hiera_tiny")
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(10.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_visible.pt"
    save_checkpoint(model, path)
    return path


def node_params(checkpoint, **extra):
    params = {
        "checkpoint": str(checkpoint),
        "model_config": "sam2.1_hiera_tiny",
        "image_size": 128,
        "device": "cpu",
        "history_frames": 30,
    }
    params.update(extra)
    return params


@pytest.fixture(scope="module")
def node(tmp_path_factory, visible_checkpoint):
    proc = NodeProcess(tmp_path_factory.mktemp("node"), node_params(visible_checkpoint))
    proc.wait_log("active: tracking")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def client(node):
    c = RosClient()
    c.subscribe(f"{NS}/objects", TrackedObjectArray)
    c.subscribe_sensor(f"{NS}/mask", Image)
    c.subscribe("/diagnostics", DiagnosticArray)
    for topic in (f"{NS}/objects", f"{NS}/mask", "/diagnostics"):
        c.wait_publishers(topic)
    c.wait_subscribers("/camera/image")
    yield c
    c.close()


@pytest.fixture(scope="module")
def frames():
    return moving_shapes_video(40, H, W, seed=4)[0]


class Session:
    """Lockstep helpers: publish a frame and wait for its results."""

    def __init__(self, client, frames, start_ns):
        self.client, self.frames, self.t, self.stamp0 = client, frames, 0, start_ns
        self.objects = client.received[f"{NS}/objects"]
        self.masks = client.received[f"{NS}/mask"]

    def stamp(self, t):
        return self.stamp0 + t * 50_000_000

    def feed(self, n=1):
        out = []
        for _ in range(n):
            stamp = self.stamp(self.t)
            self.client.publish_image("/camera/image", self.frames[self.t % len(self.frames)], stamp)
            self.client.wait_for(lambda s=stamp: self.result_for(s) is not None, what=f"results of stamp {stamp}")
            out.append(self.result_for(stamp))
            self.t += 1
        return out

    def result_for(self, stamp):
        return _latest_with_stamp(self.objects, stamp)

    def mask_for(self, stamp, timeout=10.0):
        """The label image of ``stamp``: it is published on its own topic just after
        ``~/objects``, so it may still be on its way when the objects have arrived."""
        self.client.wait_for(
            lambda: _latest_with_stamp(self.masks, stamp) is not None, timeout, what=f"the label image of stamp {stamp}"
        )
        return _latest_with_stamp(self.masks, stamp)


def _latest_with_stamp(messages, stamp):
    """The last of the received ``messages`` whose header has ``stamp`` (ns), or None."""
    for m in reversed(list(messages)):
        if stamp_to_ns(m.header.stamp) == stamp:
            return m
    return None


_SESSIONS = [0]


@pytest.fixture
def session(client, frames):
    resp = client.call(Trigger, f"{NS}/reset", Trigger.Request())
    assert resp.success, resp.message
    _SESSIONS[0] += 1
    return Session(client, frames, start_ns=_SESSIONS[0] * 1_000_000_000_000)


def click_request(obj_id, x, y, label=1, stamp_ns=0, text=""):
    req = AddPrompt.Request(object_id=obj_id, label=text)
    req.points = [Point(x=float(x), y=float(y), z=0.0)]
    req.point_labels = [label]
    req.stamp.sec, req.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return req


def full_mask(obj) -> np.ndarray:
    """The object's mask at the frame's size from its cropped mono8 mask."""
    return object_mask(obj, (H, W))


def test_objects_appear_with_consistent_fields(client, session):
    session.feed(3)
    resp = client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 30, 40, text="disc"))
    assert resp.success, resp.message
    assert resp.object.id == 1 and resp.object.label == "disc" and resp.object.area > 0
    box = AddPrompt.Request(object_id=2, label="block")
    box.box = RegionOfInterest(x_offset=90, y_offset=70, width=40 - 2, height=25)
    box.stamp.sec, box.stamp.nanosec = divmod(session.stamp(1), 1_000_000_000)  # a past frame
    resp = client.call(AddPrompt, f"{NS}/add_prompt", box)
    assert resp.success, resp.message
    results = session.feed(5)
    indices = [m.frame_index for m in results]
    assert indices == sorted(indices) and len(set(indices)) == 5
    for k, msg in enumerate(results):
        stamp = session.stamp(3 + k)
        assert msg.header.frame_id == "camera" and msg.latency_ms > 0
        assert [o.id for o in msg.objects] == [1, 2] and [o.label for o in msg.objects] == ["disc", "block"]
        labels_msg = session.mask_for(stamp)
        assert labels_msg.encoding == "mono8"
        assert (labels_msg.height, labels_msg.width) == (H, W) and labels_msg.header.stamp == msg.header.stamp
        labels = np.frombuffer(bytes(labels_msg.data), np.uint8).reshape(H, W)
        masks = {o.id: full_mask(o) for o in msg.objects}
        for o in msg.objects:
            assert 0.0 <= o.object_score <= 1.0 and 0.0 <= o.iou_score <= 1.5
            assert o.occluded == (o.object_score <= 0.5)
            mask = masks[o.id]
            assert mask.sum() == o.area > 0
            ys, xs = np.nonzero(mask)  # bbox is the mask's tight extent
            assert (o.bbox.x_offset, o.bbox.y_offset) == (xs.min(), ys.min())
            assert (o.bbox.width, o.bbox.height) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert o.mask.encoding == "mono8" and o.mask.header.stamp == msg.header.stamp
            assert not o.has_position and o.position.z == 0.0  # depth is off
            # the label image: the object's id exactly on its mask, except where a higher id overlaps
            higher = np.zeros((H, W), bool)
            for other in msg.objects:
                if other.id > o.id:
                    higher |= masks[other.id]
            assert np.array_equal(labels == o.id, mask & ~higher)
    # depth off: no 3D output, no depth subscription
    for topic in ("markers", "points", "detections_3d"):
        assert client.node.get_publishers_info_by_topic(f"{NS}/{topic}") == []
    assert client.node.get_publishers_info_by_topic("/camera/image") != []  # (the graph is readable)
    assert client.node.get_subscriptions_info_by_topic("depth") == []


@requires_ros2("vision_msgs")
def test_detections_are_the_visible_objects_in_vision_msgs(client, session):
    """~/detections: one Detection2D per visible object, its box that of ~/objects in
    vision_msgs' continuous pixel convention, class = label (or id), score = visibility."""
    from vision_msgs.msg import Detection2DArray

    detections = client.subscribe(f"{NS}/detections", Detection2DArray)
    client.wait_publishers(f"{NS}/detections")
    session.feed(1)
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 30, 40, text="disc")).success
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(2, 100, 40)).success
    results = session.feed(6)
    checked = 0
    for msg in results:
        stamp = stamp_to_ns(msg.header.stamp)
        client.wait_for(lambda s=stamp: _latest_with_stamp(detections, s) is not None, what="detections")
        det = _latest_with_stamp(detections, stamp)
        assert det.header == msg.header
        visible = [o for o in msg.objects if not o.occluded and o.area > 0]
        assert [d.id for d in det.detections] == [str(o.id) for o in visible]
        for d, o in zip(det.detections, visible):
            b = o.bbox
            assert (d.bbox.center.position.x, d.bbox.center.position.y) == (
                b.x_offset + b.width / 2,
                b.y_offset + b.height / 2,
            )
            assert (d.bbox.size_x, d.bbox.size_y) == (b.width, b.height)
            assert d.results[0].hypothesis.class_id == (o.label or str(o.id))
            assert d.results[0].hypothesis.score == pytest.approx(o.object_score)
            checked += 1
    assert checked >= 6  # the objects were visible on most frames
    assert {d.results[0].hypothesis.class_id for m in detections for d in m.detections} >= {"disc", "2"}
    client.unsubscribe(f"{NS}/detections")


def test_remove_and_reset(client, session):
    session.feed(2)
    for obj_id, x in ((1, 30), (2, 100)):
        assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(obj_id, x, 40)).success
    resp = client.call(RemoveObject, f"{NS}/remove_object", RemoveObject.Request(object_id=1))
    assert resp.success, resp.message
    assert [o.id for o in session.feed()[0].objects] == [2]
    assert client.call(Trigger, f"{NS}/reset", Trigger.Request()).success
    # a new stamp: an old one would match the result published before the reset, and the
    # frame sent would then be tracked after this test, as frame 0 of the next one
    msg = session.feed()[0]
    assert msg.objects == [] and msg.frame_index == 0  # the frame count restarted


def test_prompt_by_stamp_and_unknown_stamp(client, session):
    session.feed(4)
    resp = client.call(AddPrompt, f"{NS}/add_prompt", click_request(3, 30, 40, stamp_ns=session.stamp(1)))
    assert resp.success, resp.message
    # a new object on a past frame is started there, not "refined"
    assert resp.message.startswith("object 3 started on frame 1, tracked forward to frame 3 (area "), resp.message
    resp = client.call(AddPrompt, f"{NS}/add_prompt", click_request(3, 32, 40, stamp_ns=session.stamp(2)))
    assert resp.message.startswith("object 3 refined on frame 2, re-tracked forward to frame 3 ("), resp.message
    resp = client.call(AddPrompt, f"{NS}/add_prompt", click_request(3, 31, 41))
    assert resp.message.startswith("object 3 refined on frame 3 (area "), resp.message
    resp = client.call(AddPrompt, f"{NS}/add_prompt", click_request(4, 30, 40, stamp_ns=session.stamp(1) + 7))
    assert not resp.success
    assert resp.message.startswith("stamp: no buffered frame has stamp")
    assert "the oldest is 0.150 s older than the latest" in resp.message


def test_click_topic_starts_a_new_object(client, session):
    session.feed(2)
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 100, 40)).success
    click = PointStamped()
    click.header.stamp.sec, click.header.stamp.nanosec = divmod(session.stamp(1), 1_000_000_000)
    click.point.x, click.point.y = 30.0, 40.0
    client.publish(f"{NS}/click", click)
    client.wait_for(lambda: [o.id for o in session.feed()[0].objects] == [1, 2], timeout=20, what="clicked object")


def test_overlay_when_subscribed(client, session):
    overlay = client.subscribe_sensor(f"{NS}/overlay", Image)
    session.feed(1)
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 30, 40, text="disc")).success
    first = session.stamp(session.t)  # frames from here on are tracked with the object
    after_prompt = []
    for _ in range(50):  # the subscription takes a moment to be matched
        session.feed()
        after_prompt = [m for m in list(overlay) if stamp_to_ns(m.header.stamp) >= first]
        if after_prompt:
            break
    assert after_prompt, "no overlay received"
    msg = after_prompt[-1]
    assert msg.encoding == "rgb8" and (msg.height, msg.width) == (H, W) and msg.header.frame_id == "camera"
    pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, 3)
    stamp = stamp_to_ns(msg.header.stamp)
    frame = session.frames[(stamp - session.stamp0) // 50_000_000 % len(session.frames)]
    assert not np.array_equal(pixels, frame)  # masks and boxes drawn on the input


BAD_PROMPTS = {
    "object_id 0": (lambda s: click_request(0, 10, 10), "object_id:"),
    "object_id 256": (lambda s: click_request(256, 10, 10), "object_id:"),
    "labels length": (lambda s: _with(click_request(1, 10, 10), point_labels=[1, 0]), "point_labels:"),
    "label 3": (lambda s: click_request(1, 10, 10, label=3), "point_labels:"),
    "NaN point": (lambda s: click_request(1, math.nan, 10), "points:"),
    "point outside": (lambda s: click_request(1, 500, 10), "points:"),
    "box outside": (
        lambda s: _with(
            AddPrompt.Request(object_id=1), box=RegionOfInterest(x_offset=100, y_offset=0, width=60, height=10)
        ),
        "box:",
    ),
    # boxes that end past the image or lie outside it (the image is 128x96)
    "box one past the right edge": (lambda s: _box(108, 0, 21, 10), "box:"),
    "box right of the image": (lambda s: _box(128, 0, 1, 1), "box:"),
    "box below the image": (lambda s: _box(0, 96, 1, 1), "box:"),
    "box without height": (lambda s: _box(10, 10, 5, 0), "box:"),
    "mask size": (lambda s: _with(AddPrompt.Request(object_id=1), mask=_mono(10, 10)), "mask:"),
    "mask encoding": (lambda s: _with(AddPrompt.Request(object_id=1), mask=_mono(H, W, "rgb8")), "mask:"),
    "unknown stamp": (lambda s: click_request(1, 10, 10, stamp_ns=123), "stamp:"),
    "nothing": (lambda s: AddPrompt.Request(object_id=1), "prompt:"),
}


def _with(req, **fields):
    for k, v in fields.items():
        setattr(req, k, v)
    return req


def _box(x, y, w, h):
    return _with(AddPrompt.Request(object_id=5), box=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))


def _mono(h, w, encoding="mono8"):
    c = 3 if encoding == "rgb8" else 1
    return Image(height=h, width=w, encoding=encoding, step=w * c, data=bytes(h * w * c))


def test_bad_prompts_are_refused_and_the_node_keeps_running(client, session, node):
    session.feed(2)
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 30, 40)).success
    for name, (make, field) in BAD_PROMPTS.items():
        resp = client.call(AddPrompt, f"{NS}/add_prompt", make(session))
        assert not resp.success, name
        assert resp.message.startswith(field), f"{name}: {resp.message}"
    resp = client.call(RemoveObject, f"{NS}/remove_object", RemoveObject.Request(object_id=77))
    assert not resp.success and resp.message.startswith("object_id: no object 77")
    assert node.alive()
    assert [o.id for o in session.feed()[0].objects] == [1]
    assert client.call(AddPrompt, f"{NS}/add_prompt", _box(0, 0, 128, 96)).success  # the whole image is fine


def test_clicks_log_why_they_are_refused(client, session, node):
    """Accepted and refused clicks on ~/click alternate: each logs its own line (rclpy
    refuses a second severity from one call site)."""
    session.feed(2)
    start = len(node.log())  # earlier tests' clicks are in the log too
    for x in (30.0, 500.0, 100.0, 600.0):
        click = PointStamped()  # stamp 0: the latest frame
        click.point.x, click.point.y = x, 40.0
        client.publish(f"{NS}/click", click)
    refused = [f"click refused: points: point 0 ({x}, 40) is outside the 128x96 image" for x in (500, 600)]
    client.wait_for(
        lambda: node.log()[start:].count("click: object ") == 2 and all(r in node.log()[start:] for r in refused),
        timeout=30,
        what="two clicks accepted and two refused in the log",
    )
    assert "Logger severity cannot be changed" not in node.log() and "Traceback" not in node.log()
    assert [o.id for o in session.feed()[0].objects] == [1, 2]


def test_a_burst_of_prompts_gets_every_answer(client, session):
    """A planner prompting max_objects objects at once gets an answer to every call."""
    session.feed(1)
    max_objects = next(p.default for p in PARAMS if p.name == "max_objects")  # the node's
    cli = client.node.create_client(AddPrompt, f"{NS}/add_prompt", qos_profile=QoSProfile(depth=1000))
    assert cli.wait_for_service(timeout_sec=30)
    # a refused request, resent until answered: the client's response reader is matched
    probe = client.answer(cli, click_request(0, 10, 10), resend_after=1.0)
    assert not probe.success
    futures = [cli.call_async(click_request(i, 10 + 3 * i, 40)) for i in range(1, max_objects + 1)]
    client.wait_for(lambda: all(f.done() for f in futures), timeout=180, what="an answer to every call")
    answers = [f.result() for f in futures]
    assert all(a.success for a in answers), [a.message for a in answers if not a.success]
    assert sorted(a.object.id for a in answers) == list(range(1, max_objects + 1))
    assert [o.id for o in session.feed()[0].objects] == list(range(1, max_objects + 1))
    client.node.destroy_client(cli)


def test_bad_images_are_skipped_and_logged_once(client, session, node):
    session.feed(1)
    bad = [
        Image(height=4, width=4, encoding="nv12", step=8, data=bytes(32)),
        Image(height=0, width=0, encoding="rgb8", step=0, data=b""),
        Image(height=4, width=4, encoding="rgb8", step=10, data=bytes(40)),  # step < width*3
        Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(40)),  # data size
    ]
    for _ in range(2):  # each kind twice: still logged once
        for k, img in enumerate(bad):
            img.header.stamp.sec = 77 + k
            client.publish("/camera/image", img)
    session.feed(1)  # a good frame after them is tracked
    log = node.log()
    for needle in ("unsupported encoding 'nv12'", "empty image", "step 10 is smaller", "data has 40 bytes"):
        assert log.count(needle) == 1, f"{needle!r} logged {log.count(needle)} times"
    assert all(m.header.stamp.sec not in (77, 78, 79, 80) for m in session.objects)
    assert node.alive()


def test_parameters_read_only_and_ranges(client):
    def set_param(name, value):
        v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        req = SetParameters.Request(parameters=[Parameter(name=name, value=v)])
        return client.call(SetParameters, f"{NS}/set_parameters", req).results[0]

    assert not set_param("image_size", 256).successful  # a model parameter: read-only
    assert not set_param("fill_hole_area", 5000).successful  # out of its range
    assert set_param("fill_hole_area", 4).successful


def test_a_flood_of_frames_leaves_no_backlog(client, session, node):
    session.feed(1)
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 30, 40)).success
    before = len(session.objects)
    stamps = []
    for k in range(200):  # 100 Hz
        stamp = session.stamp(1000 + k)
        client.publish_image("/camera/image", session.frames[k % len(session.frames)], stamp)
        stamps.append(stamp)
        time.sleep(0.01)
    newest = set(stamps[-3:])
    client.wait_for(
        lambda: any(stamp_to_ns(m.header.stamp) in newest for m in list(session.objects)[before:]),
        timeout=60,
        what="the results of one of the last frames sent",
    )
    last_count, quiet_since = len(session.objects), time.monotonic()
    while time.monotonic() - quiet_since < 1.5:  # then until the node is idle again
        time.sleep(0.1)
        if len(session.objects) != last_count:
            last_count, quiet_since = len(session.objects), time.monotonic()
    processed = list(session.objects)[before:]
    assert node.alive()
    assert 0 < len(processed) < 200  # frames were dropped, not queued
    last = stamp_to_ns(processed[-1].header.stamp)
    assert last in stamps[-3:]  # the newest frame wins: no backlog
    diag = client.received["/diagnostics"]
    client.wait_for(lambda: diag and _diag_value(diag[-1], "frames_dropped") > 0, timeout=15, what="diagnostics")
    status = diag[-1].status[0]
    assert {kv.key for kv in status.values} >= {
        "rate_hz",
        "latency_ms",
        "processing_ms",
        "frames_dropped",
        "objects",
        "device",
    }
    assert "cpu" in _diag_text(diag[-1], "device")
    # frames replaced while the tracker was busy were never decoded
    assert _diag_value(diag[-1], "frames_decoded") == _diag_value(diag[-1], "frames_processed") + _diag_value(
        diag[-1], "frames_failed"
    )


def test_no_label_image_or_overlay_without_subscribers(client, session, node):
    """~/mask and ~/overlay are built only while someone subscribes to them."""
    diag = client.received["/diagnostics"]

    def counts_after(frames: int) -> tuple[float, float]:
        """Feed ``frames`` frames; the built counts once diagnostics have seen them all."""
        processed = _diag_value(diag[-1], "frames_processed") if diag else 0
        session.feed(frames)
        client.wait_for(
            lambda: _diag_value(diag[-1], "frames_processed") >= processed + frames, timeout=15, what="diagnostics"
        )
        return _diag_value(diag[-1], "label_images_built"), _diag_value(diag[-1], "overlays_built")

    session.feed(1)
    assert client.call(AddPrompt, f"{NS}/add_prompt", click_request(1, 30, 40)).success
    client.unsubscribe(f"{NS}/mask")
    client.unsubscribe(f"{NS}/overlay")  # an earlier test's
    client.wait_for(lambda: client.node.count_subscribers(f"{NS}/mask") == 0, what="no ~/mask subscriber")
    client.wait_for(lambda: client.node.count_subscribers(f"{NS}/overlay") == 0, what="no ~/overlay subscriber")
    time.sleep(0.5)  # the node's side of the graph, too
    before = counts_after(1)
    assert counts_after(5) == before  # five frames published, no label image, no overlay
    client.subscribe_sensor(f"{NS}/mask", Image)  # back: label images again
    client.wait_publishers(f"{NS}/mask")
    client.wait_for(lambda: counts_after(1)[0] > before[0], timeout=20, what="label images once subscribed")


def _diag_text(msg, key):
    return next(kv.value for kv in msg.status[0].values if kv.key == key)


def _diag_value(msg, key):
    return float(_diag_text(msg, key))
