"""Reading image topics from ROS 2 bags (sqlite3 or MCAP) with ``rosbags``; no ROS install needed."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrackError
from .depth import DEPTH_TYPE, INFO_TYPE, DepthFrame, DepthPairing, DepthTopics, decode_depth_msg, intrinsics_of, paired
from .sources import Frame, Selection, SourceInfo, index_name

__all__ = [
    "IMAGE_TYPES",
    "BagRecord",
    "BagSource",
    "decode_compressed",
    "decode_raw",
    "header_stamp_ns",
]

RAW, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (RAW, COMPRESSED)  # topic types sam2-track reads
# ROS Bayer encodings -> OpenCV conversions (OpenCV names the pattern from the second row)
_BAYER = {"bayer_rggb8": "BayerBG", "bayer_bggr8": "BayerRG", "bayer_gbrg8": "BayerGR", "bayer_grbg8": "BayerGB"}
_CHANNELS = {"rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "mono16": 1, **{
    k: 1 for k in _BAYER}}  # fmt: skip


def _rosbags() -> tuple[type, object]:
    """The rosbags reader class and a ROS 2 type store, or a TrackError saying how to install it."""
    try:
        from rosbags.rosbag2 import Reader
        from rosbags.typesys import Stores, get_typestore
    except ImportError as err:
        raise TrackError("input: reading ROS 2 bags needs the rosbags package (pip install rosbags)") from err
    return Reader, get_typestore(Stores.ROS2_HUMBLE)


@dataclass
class BagRecord:
    """An input message, kept to copy it into the output bag."""

    topic: str  # input topic
    msgtype: str  # its type name, e.g. sensor_msgs/msg/Image
    msgdef: str  # its definition text as stored in the bag ("" when the bag has none)
    digest: str  # its type hash as stored in the bag ("" when the bag has none)
    log_time_ns: int  # when it was recorded
    raw: bytes | memoryview  # the serialised message (CDR)
    header: object  # the deserialised std_msgs/Header


def header_stamp_ns(raw: bytes) -> int:
    """The header stamp of a serialised (CDR) message that starts with a ``std_msgs/Header``."""
    endian = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(endian + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def decode_raw(msg: object) -> np.ndarray:
    """A ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16, Bayer 8-bit) -> RGB uint8."""
    import cv2

    enc, h, w, step = msg.encoding, int(msg.height), int(msg.width), int(msg.step)
    if enc not in _CHANNELS:
        raise TrackError(f"topic: image encoding {enc!r} is not supported; supported: {', '.join(sorted(_CHANNELS))}")
    depth = 2 if enc == "mono16" else 1
    row = w * _CHANNELS[enc] * depth
    data = np.asarray(msg.data, dtype=np.uint8)
    if h <= 0 or w <= 0 or step < row or data.size != step * h:
        raise TrackError(f"topic: malformed {enc} image {w}x{h} (step {step}, {data.size} bytes)")
    pixels = data.reshape(h, step)[:, :row]
    if enc == "mono16":  # scaled as cv_bridge (and the node) scale it: round(v * 255 / 65535)
        mono = pixels.view(">u2" if msg.is_bigendian else "<u2").reshape(h, w).astype(np.uint16)
        return cv2.cvtColor(cv2.convertScaleAbs(mono, alpha=255.0 / 65535.0), cv2.COLOR_GRAY2RGB)
    pixels = pixels.reshape(h, w, _CHANNELS[enc])
    if enc in _BAYER:
        return cv2.cvtColor(pixels[:, :, 0], getattr(cv2, f"COLOR_{_BAYER[enc]}2RGB"))
    if _CHANNELS[enc] == 1:
        return cv2.cvtColor(pixels[:, :, 0], cv2.COLOR_GRAY2RGB)
    if enc.startswith("bgr"):
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if enc == "bgra8" else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(pixels[:, :, :3])  # rgb8 rows without padding: no copy


def decode_compressed(msg: object) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) -> RGB uint8."""
    import cv2

    if "compresseddepth" in msg.format.lower():
        raise TrackError(f"topic: compressed depth images ({msg.format!r}) are not colour frames")
    bgr = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise TrackError(f"topic: cannot decode a compressed image (format {msg.format!r})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class BagSource:
    """One image topic of a ROS 2 bag (a bag folder, or a single .mcap / .db3 file), and with
    ``depth`` its depth image and camera_info topics, paired with each frame by stamp."""

    def __init__(self, path: Path, topic: str | None, depth: DepthTopics | None = None) -> None:
        self.path = path
        self.depth = depth
        self._reader_cls, self.typestore = _rosbags()
        with self._open() as reader:
            topics = {name: info.msgtype for name, info in reader.topics.items()}
            images = sorted(name for name, kind in topics.items() if kind in IMAGE_TYPES)
            listed = ", ".join(f"{t} ({topics[t]})" for t in images) or "none"
            if topic is None:
                if len(images) != 1:
                    raise TrackError(
                        f"topic: bag {path} has {len(images)} image topics, name one with --topic: {listed}"
                    )
                topic = images[0]
            if topic not in topics:
                raise TrackError(f"topic: bag {path} has no topic {topic!r}; its image topics: {listed}")
            if topics[topic] not in IMAGE_TYPES:
                raise TrackError(
                    f"topic: {topic} is a {topics[topic]} topic, expected {' or '.join(IMAGE_TYPES)}; "
                    f"the bag's image topics: {listed}"
                )
            self.topic, self.msgtype = topic, topics[topic]
            if depth is not None:
                depth.check(topics, path)
            count = reader.topics[topic].msgcount
            if count == 0:
                raise TrackError(f"topic: {topic} has no messages in bag {path}")
            span = (reader.end_time - reader.start_time) / 1e9
            first = self._frame(next(self._messages(reader)), 0)
        h, w = first.image.shape[:2]
        fps = (count - 1) / span if count > 1 and span > 0 else None
        self.info = SourceInfo("bag", path, count, h, w, fps)

    def _open(self) -> _Closing:
        try:
            reader = self._reader_cls(self.path)
            reader.open()
        except Exception as err:  # rosbags raises its own errors, FileNotFoundError, YAML errors ...
            raise TrackError(f"input: cannot read bag {self.path}: {err}") from err
        return _Closing(reader)

    def _messages(self, reader: object) -> Iterator[tuple[object, int, bytes]]:
        conns = [c for c in reader.connections if c.topic == self.topic]
        return reader.messages(connections=conns)

    def _frame(
        self, message: tuple[object, int, bytes], index: int, depth: object = None, info: object = None
    ) -> Frame:
        """Decode one colour message (and the depth and camera_info messages paired with it)."""
        conn, log_time, raw = message
        msg = self.typestore.deserialize_cdr(raw, conn.msgtype)
        image = decode_raw(msg) if conn.msgtype == RAW else decode_compressed(msg)
        if index and image.shape[:2] != (self.info.height, self.info.width):
            h, w = image.shape[:2]
            raise TrackError(
                f"topic: frame {index} of {self.topic} is {w}x{h}, its first frame {self.info.width}x{self.info.height}"
            )
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec or log_time
        record = BagRecord(self.topic, conn.msgtype, conn.msgdef.data, conn.digest or "", log_time, raw, msg.header)
        paired_depth = None
        if depth is not None:
            hw = image.shape[:2]
            depth_msg = self.typestore.deserialize_cdr(depth[2], DEPTH_TYPE)
            info_msg = self.typestore.deserialize_cdr(info[2], INFO_TYPE)
            paired_depth = DepthFrame(decode_depth_msg(depth_msg, hw), intrinsics_of(info_msg, hw))
        return Frame(index, index_name(index), stamp, image, record, paired_depth)

    def frames(self, selection: Selection) -> Iterator[Frame]:
        if self.depth is not None:
            yield from self._frames_with_depth(selection)
            return
        with self._open() as reader:
            for index, message in enumerate(self._messages(reader)):
                if index >= selection.end(self.info.count):
                    return
                if selection.contains(index):
                    yield self._frame(message, index)

    def stamps(self, topic: str | None = None) -> Iterator[tuple[int, int]]:
        """``(index, header stamp ns)`` of every message of ``topic`` (default: the image
        topic), reading no pixels."""
        with self._open() as reader:
            conns = [c for c in reader.connections if c.topic == (topic or self.topic)]
            for index, (_, log_time, raw) in enumerate(reader.messages(connections=conns)):
                yield index, header_stamp_ns(raw) or log_time

    def _frames_with_depth(self, selection: Selection) -> Iterator[Frame]:
        """The selected frames, each with the depth and camera_info nearest in stamp."""
        d = self.depth
        pairing = DepthPairing(
            [s for _, s in self.stamps(d.depth)], [s for _, s in self.stamps(d.camera_info)], d.slop_ns
        )
        selected = [(i, s) for i, s in self.stamps() if selection.contains(i) and i < selection.end(self.info.count)]
        matches = {s: pairing.match(s) for _, s in selected}
        roles = {self.topic: "colour", d.depth: "depth", d.camera_info: "camera_info"}
        indices = iter(i for i, _ in selected)

        def messages(reader: object) -> Iterator[tuple[str, int, tuple]]:
            index = -1
            conns = [c for c in reader.connections if c.topic in roles]
            for conn, log_time, raw in reader.messages(connections=conns):
                role = roles[conn.topic]
                if role == "colour":
                    index += 1
                    if not (selection.contains(index) and index < selection.end(self.info.count)):
                        continue
                yield role, header_stamp_ns(raw) or log_time, (conn, log_time, raw)

        with self._open() as reader:
            for colour, depth, info in paired(messages(reader), matches):
                yield self._frame(colour, next(indices), depth, info)


class _Closing:
    """``with``-support for an opened rosbags reader."""

    def __init__(self, reader: object) -> None:
        self.reader = reader

    def __enter__(self) -> object:
        return self.reader

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
