"""The node fed compressed images (``image_transport: compressed``) against one fed the same
frames raw, both in their own processes over real ROS 2 transport, with the committed demo
model (its masks follow the objects, so JPEG's loss shows as a loss of mask agreement)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import moving_shapes_video
from PIL import Image as PILImage
from ros_helpers import NodeProcess, RosClient
from test_node_detector import demo_params
from test_node_ros import H, W, click_request

pytestmark = pytest.mark.ros

from sensor_msgs.msg import CompressedImage, RegionOfInterest  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from sam2_ros.conversions import object_mask, stamp_to_ns  # noqa: E402
from sam2_ros.msg import TrackedObjectArray  # noqa: E402
from sam2_ros.srv import AddPrompt  # noqa: E402

RAW, PACKED = "/sam2_raw", "/sam2_packed"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("compressed")
    raw = NodeProcess(log_dir, demo_params(image_size=256), name="sam2_raw", image="/cam_raw/image")
    packed = NodeProcess(
        log_dir,
        demo_params(image_size=256, image_transport="compressed"),
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


def _reset(client):
    """Both nodes without objects (each test starts its own video)."""
    for ns in (RAW, PACKED):
        assert client.call(Trigger, f"{ns}/reset", Trigger.Request()).success
    return client


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
    client = _reset(pair[2])
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


def test_jpeg_frames_track_within_jpeg_loss_of_raw_ones(pair):
    """JPEG (quality 100, 4:4:4): every mask within IoU 0.98 of the mask of the same frame
    sent raw. Lower qualities and chroma subsampling cost the demo model more (measured in
    docs/node.md): its objects differ mostly by colour."""
    client = _reset(pair[2])
    from sam2_model.data import SyntheticConfig, generate_video

    video = generate_video(5, SyntheticConfig(num_frames=12, num_distractors=0))  # the demo model's own kind
    frames, ids, hw = video.frames, video.object_ids, video.frames[0].shape[:2]
    stamp0 = 6_000_000_000
    _feed(client, frames[0], stamp0, "jpeg")
    for ns in (RAW, PACKED):
        for obj_id in ids:
            ys, xs = np.nonzero(video.masks[0][obj_id])
            req = AddPrompt.Request(object_id=obj_id)
            req.box = RegionOfInterest(
                x_offset=int(xs.min()), y_offset=int(ys.min()), width=int(np.ptp(xs)) + 1, height=int(np.ptp(ys)) + 1
            )
            req.stamp.sec, req.stamp.nanosec = divmod(stamp0, 1_000_000_000)
            resp = client.call(AddPrompt, f"{ns}/add_prompt", req)
            assert resp.success, resp.message
    ious = []
    for t in range(1, 12):
        a, b = _feed(client, frames[t], stamp0 + t * 50_000_000, "jpeg")
        assert [o.id for o in a.objects] == [o.id for o in b.objects] == ids
        for oa, ob in zip(a.objects, b.objects, strict=True):
            ma, mb = object_mask(oa, hw), object_mask(ob, hw)
            assert ma.sum() > 500, (t, oa.id)  # the demo model follows the shapes
            ious.append((ma & mb).sum() / (ma | mb).sum())
    assert min(ious) >= 0.98, sorted(ious)[:5]
    assert min(ious) < 1.0  # JPEG did change something: the comparison is not vacuous


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
