"""Several cameras on one node, over real ROS 2 transport: ``cameras: [front, wrist]``, two
videos of different sizes at different rates, prompts by camera. Each camera's masks equal
those of a tracker driven by hand on that camera's frames alone (what a single-camera node
publishes); removing or resetting on one camera leaves the other untouched; a camera that
stops publishing does not stall the other; diagnostics per camera and for the node.

The committed demo model at 128 px on the CPU, reliable image QoS and frames paced on the
node's answers, so that none is dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import moving_shapes_video, requires_ros2
from ros_helpers import NodeProcess, RosClient
from test_node_detector import demo_params, detection_array, mask_box
from test_node_ros import _diag_text, _latest_with_stamp

pytestmark = [pytest.mark.ros, requires_ros2("vision_msgs")]

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from sam2_model import SAM2Tracker, build_sam2  # noqa: E402
from sam2_ros.msg import TrackedObjectArray  # noqa: E402
from sam2_ros.srv import AddPrompt, RemoveObject  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "sam2_ros_demo.pt"
NAME = "sam2_cams"
NS = f"/{NAME}"
SIZES = {"front": (96, 128), "wrist": (120, 160)}  # (H, W) of each camera's video
HISTORY = 40


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = NodeProcess(
        tmp_path_factory.mktemp("cameras"),
        demo_params(cameras="[front, wrist]", detections_topic="detections"),
        name=NAME,
    )
    proc.wait_log("active: tracking on front on '/front/image', wrist on '/wrist/image'")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def client(node):
    from vision_msgs.msg import Detection2DArray

    c = RosClient("cameras_test_client")
    for camera in SIZES:
        c.subscribe(f"{NS}/{camera}/objects", TrackedObjectArray)
        c.wait_publishers(f"{NS}/{camera}/objects")
        c.wait_subscribers(f"/{camera}/image")
        c.wait_subscribers(f"/{camera}/detections", Detection2DArray)
        c.wait_subscribers(f"{NS}/{camera}/click", PointStamped)
    c.subscribe("/diagnostics", DiagnosticArray)
    yield c
    c.close()


class Camera:
    """One camera's frames, sent paced on the node's answers, and a tracker driven by hand
    over the same frames: what a single-camera node on this camera would publish."""

    def __init__(self, client, name, seed, stamp0):
        self.client, self.name, self.t = client, name, 0
        h, w = SIZES[name]
        self.frames, self.truth = moving_shapes_video(40, h, w, seed=seed)
        self.stamp0 = stamp0
        model = build_sam2("sam2_ros_demo", str(DEMO_MODEL), image_size=128)
        self.reference = SAM2Tracker(model, history_frames=HISTORY, max_objects=3)

    def stamp(self, t):
        return self.stamp0 + t * 50_000_000

    def send(self):
        self.client.publish_image(f"/{self.name}/image", self.frames[self.t], self.stamp(self.t))

    def result(self, t):
        received = self.client.received[f"{NS}/{self.name}/objects"]
        what = f"{self.name}'s ~/objects of frame {t}"
        self.client.wait_for(lambda: _latest_with_stamp(received, self.stamp(t)) is not None, 30, what=what)
        return _latest_with_stamp(received, self.stamp(t))

    def finish(self):
        """Wait for the frame sent last, check it against the reference, move on."""
        msg = self.result(self.t)
        want = self.reference.track(self.frames[self.t])
        assert msg.frame_index == want.frame_index, (self.name, self.t)
        got = masks_of(msg, SIZES[self.name])
        assert sorted(got) == sorted(want.objects), (self.name, self.t)
        for i, obj in want.objects.items():
            assert np.array_equal(got[i], obj.mask), (self.name, self.t, i)
        self.t += 1
        return msg


def masks_of(msg, hw):
    from sam2_ros.conversions import object_mask

    return {o.id: object_mask(o, hw) for o in msg.objects}


def run(cameras, rounds, every):
    """``rounds`` rounds; camera i sends a frame every ``every[i]`` rounds (both at once when
    both are due), and each waits for its answer before its next frame."""
    for r in range(rounds):
        due = [c for c, n in zip(cameras, every, strict=True) if r % n == 0]
        for c in due:
            c.send()
        for c in due:
            c.finish()


def box_prompt(camera, obj_id, box, stamp_ns, label):
    x, y, w, h = box
    req = AddPrompt.Request(object_id=obj_id, label=label, camera=camera)
    req.box = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)
    req.stamp.sec, req.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return req


def reset_all(client):
    answer = client.call(Trigger, f"{NS}/reset", Trigger.Request())
    assert answer.success and answer.message.startswith("every camera reset (front, wrist)"), answer.message


def test_two_cameras_at_two_rates_track_as_each_would_alone(client, node):
    reset_all(client)
    front, wrist = Camera(client, "front", 21, 10**12), Camera(client, "wrist", 22, 2 * 10**12)
    run([front, wrist], 1, [1, 1])
    # prompts by camera, on each camera's frame 0; the same id on both is two objects
    for cam, obj, label in ((front, 2, "block"), (wrist, 1, "disc")):
        box = mask_box(cam.truth[0][obj])
        answer = client.call(AddPrompt, f"{NS}/add_prompt", box_prompt(cam.name, 1, box, cam.stamp(0), label))
        assert answer.success, answer.message
        x, y, w, h = box
        want = cam.reference.add_prompt(1, box=[x, y, x + w - 1, y + h - 1], frame_index=0)
        assert answer.object.id == 1 and answer.object.label == label and answer.object.area == want.area
        assert answer.message.startswith("object 1 started on frame 0"), answer.message  # that camera's frame 0
    # front at three times wrist's rate; rounds with both frames encode them as one batch
    run([front, wrist], 12, [1, 3])
    assert (front.t, wrist.t) == (13, 5)
    # a click on ~/wrist/click starts object 2 on wrist only
    x, y, w, h = mask_box(wrist.truth[wrist.t - 1][2])
    click = PointStamped()
    click.header.stamp.sec, click.header.stamp.nanosec = divmod(wrist.stamp(wrist.t - 1), 1_000_000_000)
    click.point.x, click.point.y = float(x + w // 2), float(y + h // 2)
    client.publish(f"{NS}/wrist/click", click)
    node.wait_log("click on camera wrist: object 2 started on frame 4")
    wrist.reference.add_prompt(2, points=[[x + w // 2, y + h // 2]], labels=[1], frame_index=4)
    run([front, wrist], 6, [1, 2])
    assert sorted(masks_of(front.result(front.t - 1), SIZES["front"])) == [1]
    assert sorted(masks_of(wrist.result(wrist.t - 1), SIZES["wrist"])) == [1, 2]


def test_prompts_name_a_known_camera(client, node):
    reset_all(client)
    front = Camera(client, "front", 23, 3 * 10**12)
    run([front], 2, [1])
    for camera, message in (
        ("", "camera: empty, but this node tracks 2 cameras; name one of front, wrist"),
        ("rear", "camera: 'rear' is unknown; the cameras are front, wrist"),
    ):
        answer = client.call(AddPrompt, f"{NS}/add_prompt", box_prompt(camera, 1, (5, 5, 20, 20), 0, "x"))
        assert (answer.success, answer.message) == (False, message)
        req = RemoveObject.Request(object_id=1, camera=camera)
        assert client.call(RemoveObject, f"{NS}/remove_object", req).message == message
    run([front], 2, [1])  # nothing changed: still no object
    assert masks_of(front.result(front.t - 1), SIZES["front"]) == {}


def test_remove_and_reset_on_one_camera_leave_the_other_untouched(client, node):
    reset_all(client)
    front, wrist = Camera(client, "front", 24, 4 * 10**12), Camera(client, "wrist", 25, 5 * 10**12)
    run([front, wrist], 1, [1, 1])
    for cam in (front, wrist):
        for obj in (1, 2):
            box = mask_box(cam.truth[0][obj])
            answer = client.call(AddPrompt, f"{NS}/add_prompt", box_prompt(cam.name, obj, box, cam.stamp(0), ""))
            assert answer.success, answer.message
            x, y, w, h = box
            cam.reference.add_prompt(obj, box=[x, y, x + w - 1, y + h - 1], frame_index=0)
    run([front, wrist], 3, [1, 1])
    answer = client.call(RemoveObject, f"{NS}/remove_object", RemoveObject.Request(object_id=1, camera="wrist"))
    assert answer.success, answer.message
    wrist.reference.remove_object(1)
    run([front, wrist], 3, [1, 1])  # front still tracks 1 and 2, as its reference does
    assert sorted(masks_of(front.result(front.t - 1), SIZES["front"])) == [1, 2]
    answer = client.call(Trigger, f"{NS}/front/reset", Trigger.Request())
    assert (answer.success, answer.message) == (True, "camera front: tracker reset: no objects, frame count restarted")
    front.reference.reset()
    run([front, wrist], 3, [1, 1])  # front restarts at frame 0 with nothing; wrist goes on at frame 7
    assert front.result(front.t - 1).frame_index == 2 and wrist.result(wrist.t - 1).frame_index == 9
    assert sorted(masks_of(wrist.result(wrist.t - 1), SIZES["wrist"])) == [2]


def test_the_command_line_client_names_a_camera(client, node):
    from test_node_lifecycle import _prompt_cli

    reset_all(client)
    wrist = Camera(client, "wrist", 30, 10 * 10**12)
    run([wrist], 2, [1])
    x, y, w, h = mask_box(wrist.truth[1][1])
    out = _prompt_cli("--node", NS, "--camera", "wrist", "box", str(x), str(y), str(x + w - 1), str(y + h - 1))
    assert out.returncode == 0 and "object 1 started on frame 1" in out.stdout, out.stdout + out.stderr
    wrist.reference.add_prompt(1, box=[x, y, x + w - 1, y + h - 1])
    out = _prompt_cli("--node", NS, "--camera", "rear", "remove", "1")
    assert out.returncode == 1 and "camera: 'rear' is unknown; the cameras are front, wrist" in out.stdout
    out = _prompt_cli("--node", NS, "remove", "1")
    assert out.returncode == 1 and "camera: empty, but this node tracks 2 cameras" in out.stdout
    run([wrist], 2, [1])  # object 1 still tracked on wrist
    out = _prompt_cli("--node", NS, "--camera", "wrist", "reset")
    assert out.returncode == 0 and out.stdout.startswith("camera wrist: tracker reset"), out.stdout + out.stderr


def test_a_silent_camera_does_not_stall_the_other(client, node):
    reset_all(client)
    front, wrist = Camera(client, "front", 26, 6 * 10**12), Camera(client, "wrist", 27, 7 * 10**12)
    run([front, wrist], 2, [1, 1])
    run([front], 8, [1])  # wrist stopped publishing: front goes on, frame by frame
    assert front.t == 10 and wrist.t == 2


def test_a_detector_per_camera(client, node):
    reset_all(client)
    front, wrist = Camera(client, "front", 28, 8 * 10**12), Camera(client, "wrist", 29, 9 * 10**12)
    run([front, wrist], 3, [1, 1])
    x, y, w, h = mask_box(wrist.truth[1][2])
    client.publish("/wrist/detections", detection_array(wrist.stamp(1), (x, y, w, h, "block", 0.9)))
    node.wait_log("detector (camera wrist): 'block' detected: object 1 started on frame 1")
    wrist.reference.add_prompt(1, box=[x, y, x + w - 1, y + h - 1], frame_index=1)
    run([front, wrist], 3, [1, 1])
    assert masks_of(front.result(front.t - 1), SIZES["front"]) == {}


def test_diagnostics_per_camera_and_for_the_node(client, node):
    def statuses():
        for m in reversed(list(client.received["/diagnostics"])):
            if m.status and m.status[0].name == f"{NAME}: tracking":
                return m
        return None

    def wrist_started():
        msg = statuses()
        if msg is None or len(msg.status) != 3:
            return False
        values = {kv.key: kv.value for kv in msg.status[2].values}
        return int(values.get("detections_started", 0)) >= 1  # published after the detector test's box

    client.wait_for(wrist_started, 15, what="diagnostics of both cameras, after the detector's box")
    msg = statuses()
    assert [s.name for s in msg.status] == [f"{NAME}: tracking", f"{NAME}: camera front", f"{NAME}: camera wrist"]
    node_keys = {kv.key for kv in msg.status[0].values}
    assert {"rounds", "rounds_hz", "encoder_batch", "cameras", "device", "model"} <= node_keys
    assert _diag_text(msg, "cameras") == "front, wrist"
    assert 1.0 <= float(_diag_text(msg, "encoder_batch")) <= 2.0
    for status in msg.status[1:]:
        values = {kv.key: kv.value for kv in status.values}
        assert {"rate_hz", "latency_ms", "frames_dropped", "objects", "detections_received"} <= set(values)
        assert int(values["frames_dropped"]) == 0  # reliable and paced: nothing dropped
    front = {kv.key: kv.value for kv in msg.status[1].values}
    wrist = {kv.key: kv.value for kv in msg.status[2].values}
    assert int(front["frames_processed"]) > int(wrist["frames_processed"]) > 0
    assert int(wrist["detections_started"]) == 1 and int(front["detections_received"]) == 0
