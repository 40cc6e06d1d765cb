"""The node fed compressed images (``image_transport: compressed``) against one fed the same
frames raw, both in their own processes over real ROS 2 transport."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import moving_shapes_video
from PIL import Image as PILImage
from ros_helpers import NodeProcess, RosClient
from test_node_ros import H, W, click_request, node_params, visible_checkpoint  # noqa: F401 (a fixture)

pytestmark = pytest.mark.ros

from sensor_msgs.msg import CompressedImage  # noqa: E402

from sam2_ros.conversions import object_mask, stamp_to_ns  # noqa: E402
from sam2_ros.msg import TrackedObjectArray  # noqa: E402
from sam2_ros.srv import AddPrompt  # noqa: E402

RAW, PACKED = "/sam2_raw", "/sam2_packed"


@pytest.fixture(scope="module")
def pair(tmp_path_factory, visible_checkpoint):  # noqa: F811
    log_dir = tmp_path_factory.mktemp("compressed")
    raw = NodeProcess(log_dir, node_params(visible_checkpoint), name="sam2_raw", image="/cam_raw/image")
    packed = NodeProcess(
        log_dir,
        node_params(visible_checkpoint, image_transport="compressed", qos_reliability="reliable"),
        name="sam2_packed",
        image="/cam_packed/image",
    )
    client = RosClient("compressed_client")
    try:
        raw.wait_log("active: tracking")
        packed.wait_log("active: tracking on '/cam_packed/image/compressed'")
        for ns in (RAW, PACKED):
            client.subscribe(f"{ns}/objects", TrackedObjectArray)
            client.wait_publishers(f"{ns}/objects")
        client.wait_subscribers("/cam_raw/image")
        client.wait_subscribers("/cam_packed/image/compressed", CompressedImage)
        yield raw, packed, client
    finally:
        client.close()
        assert raw.stop() == 0 and packed.stop() == 0


def _compressed(rgb: np.ndarray, stamp_ns: int, kind: str) -> CompressedImage:
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="PNG" if kind == "png" else "JPEG", quality=100, subsampling=0)
    msg = CompressedImage(format=f"rgb8; {kind} compressed bgr8", data=buf.getvalue())  # image_transport default
    msg.header.frame_id = "camera"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def _result(client, ns, stamp):
    for m in reversed(list(client.received[f"{ns}/objects"])):
        if stamp_to_ns(m.header.stamp) == stamp:
            return m
    return None


def _feed(client, rgb, stamp, kind, data=None):
    """One frame to both nodes; both results."""
    client.publish_image("/cam_raw/image", rgb, stamp)
    msg = _compressed(rgb, stamp, kind)
    if data is not None:
        msg.data = data
    client.publish("/cam_packed/image/compressed", msg)
    client.wait_for(lambda: _result(client, RAW, stamp) and _result(client, PACKED, stamp), what=f"stamp {stamp}")
    return _result(client, RAW, stamp), _result(client, PACKED, stamp)


def test_compressed_frames_track_like_raw_ones(pair):
    client = pair[2]
    frames = moving_shapes_video(12, H, W, seed=5)[0]
    stamp0 = 5_000_000_000
    _feed(client, frames[0], stamp0, "png")
    for ns in (RAW, PACKED):
        resp = client.call(AddPrompt, f"{ns}/add_prompt", click_request(1, 30, 40, stamp_ns=stamp0))
        assert resp.success, resp.message
    for t in range(1, 12):
        a, b = _feed(client, frames[t], stamp0 + t * 50_000_000, "png")
        assert [o.id for o in a.objects] == [o.id for o in b.objects] == [1]
        # lossless: the very same masks
        assert np.array_equal(object_mask(a.objects[0], (H, W)), object_mask(b.objects[0], (H, W))), t


def test_corrupt_compressed_frames_are_skipped_and_logged_once(pair):
    _, packed, client = pair
    frame = moving_shapes_video(1, H, W, seed=6)[0][0]
    good = _compressed(frame, 1, "jpeg").data
    truncated = bytes(good[: len(good) // 2])
    for k in range(3):  # each kind three times: logged once
        for j, (fmt, data) in enumerate((("jpeg", truncated), ("tiff", good), ("png", b"not a picture"))):
            msg = CompressedImage(format=fmt, data=data)
            msg.header.stamp.sec = 90 + 3 * k + j
            client.publish("/cam_packed/image/compressed", msg)
    _feed(client, frame, 99_000_000_000, "jpeg")  # a good frame after them is tracked
    log = packed.log()
    for needle in ("truncated JPEG data", "unsupported compressed format 'tiff'", "neither JPEG nor PNG"):
        assert log.count(needle) == 1, f"{needle!r} logged {log.count(needle)} times:\n{log}"
    assert all(m.header.stamp.sec < 90 or m.header.stamp.sec > 98 for m in client.received[f"{PACKED}/objects"])
    assert packed.alive()
