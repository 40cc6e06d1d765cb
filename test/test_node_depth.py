"""Depth and 3D over real ROS 2 transport: the node with ``depth`` on pairs colour images with
depth and camera_info through message_filters, and gives each object a position and size,
``~/detections_3d``, ``~/markers`` and ``~/points``; it warns when the depth stops. The
message builders and the synchronisation monitor are checked without transport first.

The scene: the demo model's own kind of video (320x240, three objects); the depth map puts
the background at 4 m and object k at 1 + 0.5 k metres where the video's ground truth has it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_ros2
from ros_helpers import NodeProcess, RosClient

pytestmark = [pytest.mark.ros, requires_ros2("vision_msgs", "message_filters")]

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Point, Vector3  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, RegionOfInterest  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from sam2_model.data import SyntheticConfig, generate_video  # noqa: E402
from sam2_model.geometry import ObjectGeometry  # noqa: E402
from sam2_ros.camera_input import SyncMonitor  # noqa: E402
from sam2_ros.conversions import stamp_to_ns  # noqa: E402
from sam2_ros.msg import TrackedObject, TrackedObjectArray  # noqa: E402
from sam2_ros.outputs_3d import marker_array, point_cloud  # noqa: E402
from sam2_ros.srv import AddPrompt, RemoveObject  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = "/sam2_depth"
FX, FY, CX, CY = 300.0, 310.0, 160.0, 120.0


# ---------------------------------------------------------------- without transport
def _obj(obj_id, label="", position=None, size=(0.1, 0.2, 0.05)):
    o = TrackedObject(id=obj_id, label=label, area=10)
    if position is not None:
        o.position = Point(x=position[0], y=position[1], z=position[2])
        o.size = Vector3(x=size[0], y=size[1], z=size[2])
        o.has_position = True
    return o


def test_markers_draw_objects_with_a_position_and_delete_the_others():
    header = Header(frame_id="camera_color_optical_frame")
    objects = [_obj(1, "cup", (0.1, -0.2, 1.5)), _obj(2, "box"), _obj(4, "", (0.0, 0.0, 2.0), (0.0, 0.3, 0.0))]
    markers, drawn = marker_array(header, objects, shown={2, 3, 4})
    assert drawn == {1, 4}
    adds = [(m.ns, m.id, m.type) for m in markers.markers if m.action == Marker.ADD]
    assert adds == [
        ("sam2_boxes", 1, Marker.CUBE),
        ("sam2_labels", 1, Marker.TEXT_VIEW_FACING),
        ("sam2_boxes", 4, Marker.CUBE),
        ("sam2_labels", 4, Marker.TEXT_VIEW_FACING),
    ]
    deletes = [(m.ns, m.id) for m in markers.markers if m.action == Marker.DELETE]
    assert deletes == [("sam2_boxes", 2), ("sam2_labels", 2), ("sam2_boxes", 3), ("sam2_labels", 3)]
    box, text = markers.markers[0], markers.markers[1]
    assert (box.pose.position.x, box.pose.position.y, box.pose.position.z) == (0.1, -0.2, 1.5)
    assert (box.scale.x, box.scale.y, box.scale.z) == (0.1, 0.2, 0.05)
    assert (round(box.color.r * 255), round(box.color.g * 255), round(box.color.b * 255)) == (60, 180, 75)
    assert text.text == "1 cup" and text.pose.position.y == pytest.approx(-0.2 - 0.1 - 0.05)
    assert markers.markers[2].scale.x == 0.01 and markers.markers[3].text == "4"  # flat: drawn 1 cm thick
    assert all(m.header.frame_id == "camera_color_optical_frame" for m in markers.markers)


def test_point_cloud_fields_and_ids():
    geometry = {
        3: ObjectGeometry((0, 0, 1), (0, 0, 0), np.array([[1, 2, 3], [4, 5, 6]], np.float32)),
        1: ObjectGeometry(None, (0, 0, 0), np.array([[7, 8, 9]], np.float32)),
    }
    cloud = point_cloud(Header(frame_id="cam"), geometry)
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7),
        ("y", 4, 7),
        ("z", 8, 7),
        ("id", 12, 6),
    ]
    assert (cloud.width, cloud.height, cloud.point_step, cloud.row_step) == (3, 1, 16, 48)
    points = _cloud_points(cloud)
    assert points["id"].tolist() == [1, 3, 3]
    assert np.stack([points["x"], points["y"], points["z"]], 1).tolist() == [[7, 8, 9], [1, 2, 3], [4, 5, 6]]


def test_sync_monitor_names_the_silent_topic():
    m = SyncMonitor({"image": "/c/image", "depth": "/c/depth", "camera_info": "/c/info"}, slop=0.05)
    assert m.problem(now=10.0) is None  # nothing arrives: nothing to say
    m.saw("image", 1_000_000_000, now=10.0)
    m.saw("camera_info", 1_000_000_000, now=10.0)
    assert m.problem(now=10.5) == (
        "colour images arrive on '/c/image' but no synchronised set yet: no message on depth '/c/depth'"
    )
    m.saw("depth", 1_300_000_000, now=10.6)  # stamps 0.3 s apart
    assert m.problem(now=10.7).endswith(
        "the stamps differ by more than sync_slop (0.05 s): depth - image +0.300 s, camera_info - image +0.000 s"
    )
    m.paired(now=11.0)
    m.paired(now=11.5)
    assert m.problem(now=12.0) is None and m.rate_hz() == 2.0 and m.sets == 2
    m.saw("image", 3_000_000_000, now=13.9)
    assert m.problem(now=14.0) == (
        "colour images arrive on '/c/image' but no synchronised set for 2.5 s: no message on depth '/c/depth' or "
        "camera_info '/c/info'"
    )


def _cloud_points(cloud: PointCloud2) -> np.ndarray:
    kind = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])
    return np.frombuffer(bytes(cloud.data), kind)


# ---------------------------------------------------------------- over ROS 2
@pytest.fixture(scope="module")
def video():
    return generate_video(5, SyntheticConfig(num_frames=14, num_distractors=0))


def depth_map(video, t: int, missing: int | None = None) -> np.ndarray:
    """Metres: the background at 4 m, object k at 1 + 0.5 k (no reading on object ``missing``)."""
    depth = np.full(video.frames[t].shape[:2], 4.0, np.float32)
    for obj_id, mask in video.masks[t].items():
        depth[mask] = 0.0 if obj_id == missing else 1.0 + 0.5 * obj_id
    return depth


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    params = {
        "checkpoint": str(ROOT / "models" / "sam2_ros_demo.pt"),
        "model_config": "sam2_ros_demo",
        "device": "cpu",
        "depth": True,
        "qos_reliability": "reliable",
        "sync_slop": 0.01,
    }
    remaps = {"depth": "/d_cam/depth", "camera_info": "/d_cam/camera_info"}
    proc = NodeProcess(tmp_path_factory.mktemp("depth"), params, "sam2_depth", "/d_cam/image", remaps=remaps)
    proc.wait_log("active: tracking on '/d_cam/image'")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def client(node):
    from vision_msgs.msg import Detection3DArray

    c = RosClient("depth_test_client")
    c.subscribe(f"{NS}/objects", TrackedObjectArray)
    c.subscribe(f"{NS}/detections_3d", Detection3DArray)
    c.subscribe(f"{NS}/markers", MarkerArray)
    c.subscribe(f"{NS}/points", PointCloud2)
    c.subscribe("/diagnostics", DiagnosticArray)
    for topic in ("objects", "detections_3d", "markers", "points"):
        c.wait_publishers(f"{NS}/{topic}")
    c.wait_subscribers("/d_cam/image")
    c.wait_subscribers("/d_cam/depth")
    c.wait_subscribers("/d_cam/camera_info", CameraInfo)
    yield c
    c.close()


def _stamp(t: int) -> int:
    return 50_000_000_000 + t * 100_000_000


def _depth_msg(depth: np.ndarray, stamp: int, encoding: str) -> Image:
    values = (depth * 1000).astype("<u2") if encoding == "16UC1" else depth.astype("<f4")
    msg = Image(encoding=encoding, height=depth.shape[0], width=depth.shape[1], is_bigendian=0)
    msg.step = depth.shape[1] * values.itemsize
    msg.data = values.tobytes()
    msg.header.frame_id = "camera"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    return msg


def _info(stamp: int, h: int, w: int) -> CameraInfo:
    info = CameraInfo(height=h, width=w, distortion_model="plumb_bob")
    info.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    info.header.frame_id = "camera"
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    return info


def _latest(client, topic, stamp):
    for m in reversed(list(client.received[topic])):
        if stamp_to_ns(m.header.stamp) == stamp:
            return m
    return None


def send(client, video, t, depth=None, encoding="32FC1", send_depth=True):
    """Frame t's colour image, depth and camera_info, all with stamp t; waits for ~/objects
    unless the depth is left out (then no set is complete)."""
    stamp = _stamp(t)
    frame = video.frames[t]
    depth = depth_map(video, t) if depth is None else depth
    client.publish_image("/d_cam/image", frame, stamp)
    if send_depth:
        client.publish("/d_cam/depth", _depth_msg(depth, stamp, encoding))
    client.publish("/d_cam/camera_info", _info(stamp, *frame.shape[:2]))
    if send_depth:
        client.wait_for(lambda: _latest(client, f"{NS}/objects", stamp) is not None, what=f"~/objects of frame {t}")
        return _latest(client, f"{NS}/objects", stamp)
    return None


def expected_position(video, t, obj_id):
    """The back-projected median pixel of the object's true mask, at its depth."""
    ys, xs = np.nonzero(video.masks[t][obj_id])
    z = 1.0 + 0.5 * obj_id
    return (np.median(xs) - CX) * z / FX, (np.median(ys) - CY) * z / FY, z


def test_objects_get_their_3d_position_from_synchronised_depth(client, node, video):
    first = send(client, video, 0)
    assert first.objects == []
    for obj_id in video.object_ids:
        ys, xs = np.nonzero(video.masks[0][obj_id])
        req = AddPrompt.Request(object_id=obj_id, label=f"shape{obj_id}")
        req.box = RegionOfInterest(
            x_offset=int(xs.min()), y_offset=int(ys.min()), width=int(np.ptp(xs)) + 1, height=int(np.ptp(ys)) + 1
        )
        req.stamp = first.header.stamp
        resp = client.call(AddPrompt, f"{NS}/add_prompt", req)
        assert resp.success, resp.message
    for t in range(1, 5):
        msg = send(client, video, t, encoding="16UC1" if t % 2 else "32FC1")
        assert [o.id for o in msg.objects] == video.object_ids
        for obj in msg.objects:
            assert obj.has_position, (t, obj.id)
            x, y, z = expected_position(video, t, obj.id)
            assert obj.position.z == pytest.approx(z, abs=1e-3)  # 16UC1 is in whole millimetres
            assert (obj.position.x, obj.position.y) == pytest.approx((x, y), abs=0.03), (t, obj.id)
            assert obj.size.z == pytest.approx(0.0, abs=1e-3) and obj.size.x > 0.05  # a flat object
    stamp = _stamp(4)
    client.wait_for(lambda: _latest(client, f"{NS}/detections_3d", stamp), what="~/detections_3d")
    client.wait_for(lambda: _latest(client, f"{NS}/points", stamp), what="~/points")
    det3d = _latest(client, f"{NS}/detections_3d", stamp)
    by_id = {o.id: o for o in msg.objects}
    assert [d.id for d in det3d.detections] == [str(i) for i in video.object_ids]
    for d in det3d.detections:
        o = by_id[int(d.id)]
        assert d.bbox.center.position == o.position and d.bbox.size == o.size
        assert d.results[0].hypothesis.class_id == o.label and d.header.frame_id == "camera"
    points = _cloud_points(_latest(client, f"{NS}/points", stamp))
    assert sorted(set(points["id"].tolist())) == video.object_ids
    for obj_id in video.object_ids:
        assert np.median(points["z"][points["id"] == obj_id]) == pytest.approx(by_id[obj_id].position.z)
    markers = [
        m for m in client.received[f"{NS}/markers"] if m.markers and stamp_to_ns(m.markers[0].header.stamp) == stamp
    ]
    boxes = {m.id: m for m in markers[-1].markers if m.ns == "sam2_boxes" and m.action == Marker.ADD}
    assert sorted(boxes) == video.object_ids and boxes[1].pose.position == by_id[1].position


def test_missing_depth_gives_no_position_and_deletes_the_marker(client, node, video):
    msg = send(client, video, 5, depth=depth_map(video, 5, missing=2))
    by_id = {o.id: o for o in msg.objects}
    assert not by_id[2].has_position and by_id[2].position == Point() and by_id[1].has_position
    client.wait_for(lambda: _latest(client, f"{NS}/detections_3d", _stamp(5)), what="~/detections_3d")
    assert "2" not in [d.id for d in _latest(client, f"{NS}/detections_3d", _stamp(5)).detections]
    client.wait_for(lambda: any(_deleted(m, 2) for m in client.received[f"{NS}/markers"]), what="marker 2 deleted")
    resp = client.call(RemoveObject, f"{NS}/remove_object", RemoveObject.Request(object_id=3))
    assert resp.success
    send(client, video, 6)
    client.wait_for(lambda: any(_deleted(m, 3) for m in client.received[f"{NS}/markers"]), what="marker 3 deleted")


def _deleted(markers: MarkerArray, obj_id: int) -> bool:
    return any(m.id == obj_id and m.action == Marker.DELETE and m.ns == "sam2_boxes" for m in markers.markers)


def test_a_smaller_depth_image_is_scaled_to_the_colour_image(client, node, video):
    depth = depth_map(video, 7)[::2, ::2]  # 160x120, nearest neighbour back up
    msg = send(client, video, 7, depth=depth)
    assert [o.position.z for o in msg.objects if o.has_position] == pytest.approx([1.5, 2.0])
    send(client, video, 8, depth=depth_map(video, 8)[::2, ::2])
    assert node.log().count("depth image 160x120 scaled to the colour image's 320x240") == 1


def test_a_silent_depth_topic_is_named(client, node, video):
    for t in range(9, 12):  # colour and camera_info only, for more than 2 s
        send(client, video, t, send_depth=False)
        time.sleep(0.8)
    node.wait_log("no synchronised set for", timeout=10)
    assert "no message on depth '/d_cam/depth'" in node.log()
    warn = [m for m in client.received["/diagnostics"] if m.status and m.status[0].message.startswith("colour images")]
    assert warn and warn[-1].status[0].level == b"\x01"  # WARN
    assert send(client, video, 12).objects  # and it goes on when the depth is back
