"""``sam2-track`` on an RGB-D bag: each frame paired with the depth image and camera_info
nearest in stamp, and each object's 3D position in tracks.csv and in the output bag.

The scene: the demo model's own kind of video (320x240, objects prompted with their true
masks on the first frame); the depth puts the background at 4 m and object k at 1 + 0.5 k
metres where the ground truth has it; depth is recorded 3 ms after the image, camera_info
with the image's stamp, and one frame has no depth at all.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="sam2-track's bag input needs rosbags (pip install rosbags)")

from sam2_model import build_sam2
from sam2_model.data import SyntheticConfig, davis_palette, generate_video
from sam2_model.track import TrackConfig, TrackError, run_tracking
from sam2_model.track.config import default_checkpoint
from sam2_model.track.depth import DepthPairing, paired

FX, FY, CX, CY = 300.0, 310.0, 160.0, 120.0
STAMP0 = 1_700_000_000_000_000_000
NO_DEPTH = 4  # the frame recorded without a depth image


def test_pairing_takes_the_nearest_within_the_slop():
    pairing = DepthPairing([100, 210, 290, 1000], [100, 200, 300], slop_ns=15)
    assert pairing.match(200) == (210, 200)
    assert pairing.match(295) == (290, 300)
    assert pairing.match(100) == (100, 100)
    assert pairing.match(500) is None  # no depth within 15 ns
    assert pairing.match(1000) is None  # depth, but no camera_info


def test_paired_waits_for_late_depth_and_keeps_nothing_after():
    matches = {10: (13, 10), 20: (23, 20), 30: None}
    messages = [
        ("camera_info", 10, "i10"),
        ("colour", 10, "c10"),
        ("colour", 20, "c20"),
        ("depth", 13, "d13"),  # late: c10 waited for it
        ("camera_info", 20, "i20"),
        ("depth", 99, "d99"),  # paired with nothing: dropped
        ("colour", 30, "c30"),  # no pair: waits behind c20
        ("depth", 23, "d23"),
    ]
    assert list(paired(iter(messages), matches)) == [("c10", "d13", "i10"), ("c20", "d23", "i20"), ("c30", None, None)]
    # a pair that never comes: the frame comes out at the end, without depth
    assert list(paired(iter([("colour", 10, "c10")]), {10: (13, 10)})) == [("c10", None, None)]


def _write_rgbd_bag(path: Path, video) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        image_conn = w.add_connection("/cam/color", "sensor_msgs/msg/Image", typestore=ts)
        depth_conn = w.add_connection("/cam/depth", "sensor_msgs/msg/Image", typestore=ts)
        info_conn = w.add_connection("/cam/info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        for t, rgb in enumerate(video.frames):
            h, wd = rgb.shape[:2]
            ns = STAMP0 + t * 100_000_000

            def header(stamp):
                return T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](stamp // 10**9, stamp % 10**9), "cam")

            image = T["sensor_msgs/msg/Image"](header(ns), h, wd, "rgb8", 0, wd * 3, rgb.reshape(-1))
            w.write(image_conn, ns + 5_000_000, ts.serialize_cdr(image, "sensor_msgs/msg/Image"))
            k = np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], np.float64)
            info = T["sensor_msgs/msg/CameraInfo"](
                header(ns), h, wd, "plumb_bob", np.zeros(5), k, np.zeros(9), np.zeros(12), 0, 0,
                T["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False),
            )  # fmt: skip
            w.write(info_conn, ns + 5_000_000, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            if t == NO_DEPTH:
                continue
            mm = np.full((h, wd), 4000, np.uint16)
            for obj_id, mask in video.masks[t].items():
                mm[mask] = 1000 + 500 * obj_id
            raw = mm.astype("<u2").view(np.uint8).reshape(-1)
            depth = T["sensor_msgs/msg/Image"](header(ns + 3_000_000), h, wd, "16UC1", 0, wd * 2, raw)
            w.write(depth_conn, ns + 9_000_000, ts.serialize_cdr(depth, "sensor_msgs/msg/Image"))


@pytest.fixture(scope="module")
def rgbd(tmp_path_factory):
    video = generate_video(5, SyntheticConfig(num_frames=8, num_distractors=0))
    root = tmp_path_factory.mktemp("rgbd")
    _write_rgbd_bag(root / "bag", video)
    first = np.zeros(video.frames[0].shape[:2], np.uint8)
    for obj_id, mask in video.masks[0].items():
        first[mask] = obj_id
    from PIL import Image

    png = Image.fromarray(first, mode="P")
    png.putpalette(davis_palette().reshape(-1).tolist())
    png.save(root / "first.png")
    return video, root


def _config(root: Path, out: Path, **kw) -> TrackConfig:
    values = {
        "input": str(root / "bag"),
        "out": str(out),
        "topic": "/cam/color",
        "depth_topic": "/cam/depth",
        "camera_info_topic": "/cam/info",
        "sync_slop": 0.01,
        "first_masks": str(root / "first.png"),
        "progress": False,
        "video": False,
    }
    return TrackConfig(**{**values, **kw})


def test_positions_in_tracks_csv_and_the_output_bag(rgbd, tmp_path):
    video, root = rgbd
    model = build_sam2("sam2_ros_demo", default_checkpoint())
    run_tracking(_config(root, tmp_path / "out", out_bag=str(tmp_path / "out_bag")), model=model)
    with open(tmp_path / "out" / "tracks.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-6:] == ["position_x", "position_y", "position_z", "size_x", "size_y", "size_z"]
    for row in rows:
        t, obj_id = int(row["frame"]), int(row["id"])
        if t == NO_DEPTH or row["x0"] == "":  # no depth on that frame, or the object is hidden
            assert row["position_z"] == "" and row["size_x"] == "", row
            continue
        ys, xs = np.nonzero(video.masks[t][obj_id])
        z = 1.0 + 0.5 * obj_id
        assert float(row["position_z"]) == pytest.approx(z, abs=1e-3), row
        assert float(row["position_x"]) == pytest.approx((np.median(xs) - CX) * z / FX, abs=0.03), row
        assert float(row["position_y"]) == pytest.approx((np.median(ys) - CY) * z / FY, abs=0.03), row
    assert sum(r["position_z"] != "" for r in rows) >= len(video.object_ids) * 6
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    for msg in sorted((Path(__file__).resolve().parents[1] / "msg").glob("*.msg")):
        ts.register(get_types_from_msg(msg.read_text(), f"sam2_ros/msg/{msg.stem}"))
    with Reader(tmp_path / "out_bag") as reader:
        conns = [c for c in reader.connections if c.topic == "/sam2_tracker/objects"]
        arrays = [ts.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    by_frame = {int(r["frame"]): {} for r in rows}
    for r in rows:
        by_frame[int(r["frame"])][int(r["id"])] = r
    for t, array in enumerate(arrays):
        for obj in array.objects:
            row = by_frame[t][obj.id]
            assert obj.has_position == (row["position_z"] != "")
            if obj.has_position:
                assert obj.position.z == pytest.approx(float(row["position_z"]), abs=1e-4)


def test_depth_topics_are_checked(rgbd, tmp_path):
    _, root = rgbd
    with pytest.raises(TrackError, match="depth_topic: /cam/info is a sensor_msgs/msg/CameraInfo topic"):
        run_tracking(_config(root, tmp_path / "a", depth_topic="/cam/info"))
    with pytest.raises(TrackError, match="camera_info_topic: /nope is not in the bag"):
        run_tracking(_config(root, tmp_path / "b", camera_info_topic="/nope"))
    with pytest.raises(TrackError, match="depth_topic: give --depth-topic and --camera-info-topic together"):
        _config(root, tmp_path / "c", camera_info_topic=None)


def test_depth_flags():
    from sam2_model.track.cli import build_parser, config_from_args

    args = ["bag", "--out", "o", "--depth-topic", "/d", "--camera-info-topic", "/i", "--sync-slop", "0.02"]
    config = config_from_args(build_parser().parse_args(args))
    assert (config.depth_topic, config.camera_info_topic, config.sync_slop) == ("/d", "/i", 0.02)
