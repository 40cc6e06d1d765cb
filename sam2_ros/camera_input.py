"""The camera input: the image subscription (raw or compressed) and, with ``depth`` on, the
depth and camera_info subscriptions synchronised with it by ``message_filters``; the cheap
checks on receipt; and the hand-over of each frame (or synchronised set) to the worker, to
be decoded only if the tracker takes it. A node with several cameras has one per camera."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sam2_model.geometry import Intrinsics, check_depth, decode_depth

from .conversions import image_to_rgb, stamp_to_ns
from .image_codec import check_compressed, check_image, decode_compressed
from .jobs import DepthFrame, FrameJob, events_per_second
from .log_once import LogOnce
from .params import NodeParams
from .topics import camera_topic, on_camera

__all__ = ["CameraInput", "SyncMonitor"]

SILENCE_S = 2.0  # seconds without a synchronised set (while colour images arrive) before a warning


class SyncMonitor:
    """When each synchronised topic last had a message, and when the last set was paired:
    the set rate, and what is wrong when colour images arrive but no set is paired."""

    def __init__(self, topics: dict[str, str], slop: float) -> None:
        self.topics = topics  # role ("image", "depth", "camera_info") -> full topic name
        self.slop = slop
        self.last: dict[str, float] = {}  # role -> time.monotonic() of its last message
        self.last_stamp: dict[str, int] = {}  # role -> header stamp (ns) of its last message
        self.sets = 0  # synchronised sets handed to the tracker
        self._set_times: deque[float] = deque(maxlen=30)

    def saw(self, role: str, stamp_ns: int, now: float | None = None) -> None:
        self.last[role] = time.monotonic() if now is None else now
        self.last_stamp[role] = stamp_ns

    def paired(self, now: float | None = None) -> None:
        self.sets += 1
        self._set_times.append(time.monotonic() if now is None else now)

    def rate_hz(self) -> float:
        """Synchronised sets per second over the last 30."""
        return events_per_second(self._set_times)

    def problem(self, now: float | None = None) -> str | None:
        """Why no set has been paired for :data:`SILENCE_S` while colour images arrive; None
        when sets are paired, or no colour image arrives either."""
        now = time.monotonic() if now is None else now
        colour = self.last.get("image")
        if colour is None or now - colour >= SILENCE_S:
            return None
        if self._set_times and now - self._set_times[-1] < SILENCE_S:
            return None
        since = f"for {now - self._set_times[-1]:.1f} s" if self._set_times else "yet"
        head = f"colour images arrive on '{self.topics['image']}' but no synchronised set {since}"
        silent = [r for r in ("depth", "camera_info") if r not in self.last or now - self.last[r] >= SILENCE_S]
        if silent:
            return f"{head}: no message on " + " or ".join(f"{r} '{self.topics[r]}'" for r in silent)
        image = self.last_stamp["image"]
        offsets = ", ".join(
            f"{r} - image {(self.last_stamp[r] - image) / 1e9:+.3f} s" for r in ("depth", "camera_info")
        )
        return f"{head}: the stamps differ by more than sync_slop ({self.slop} s): {offsets}"


class CameraInput:
    """Subscribes (while started) to ``image``, or ``image/compressed`` with
    ``image_transport: compressed`` (and, with ``depth``, to ``depth`` and ``camera_info``
    through an ``ApproximateTimeSynchronizer``), and hands each well-formed frame to ``submit``.
    A named camera's topics are in its namespace: ``front/image``, ``front/depth``...

    Args:
        node: the node that owns the subscriptions.
        params: the node's parameters (transport, reliability, depth, synchronisation).
        submit: takes each frame's :class:`FrameJob` (the worker's newest-frame slot).
        warn_once: logs a kind of bad frame once.
        group: the callback group of the camera's callbacks (mutually exclusive).
        camera: the camera's name (``""``: the node's one unnamed camera).
    """

    def __init__(
        self,
        node: Node,
        params: NodeParams,
        submit: Callable[[FrameJob], None],
        warn_once: LogOnce,
        group: object,
        camera: str = "",
    ) -> None:
        self._node, self._params, self._submit, self._warn_once, self._group = node, params, submit, warn_once, group
        self.camera = camera
        self._subs: list = []
        self._sync = None  # the message_filters synchroniser (depth on)
        self.monitor: SyncMonitor | None = None  # depth on: the synchronisation's health
        self.frames_skipped = 0  # images (or sets) whose fields cannot be decoded

    def start(self) -> str:
        """Subscribe; returns the colour topic's full name (after remapping)."""
        reliable = self._params.qos_reliability == "reliable"
        qos = QoSProfile(
            depth=qos_profile_sensor_data.depth,
            history=qos_profile_sensor_data.history,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        compressed = self._params.image_transport == "compressed"
        kind, topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        topic = camera_topic(self.camera, topic)
        if not self._params.depth:
            self._subs = [self._node.create_subscription(kind, topic, self._on_colour, qos, callback_group=self._group)]
        else:
            self._subscribe_synchronised(kind, topic, qos)
        return self._subs[0].topic_name  # rclpy's resolve_topic_name ignores remapping; this does not

    def _subscribe_synchronised(self, kind: type, topic: str, qos: QoSProfile) -> None:
        import message_filters

        node, group = self._node, self._group
        filters = {
            role: message_filters.Subscriber(node, msg_type, name, qos_profile=qos, callback_group=group)
            for role, msg_type, name in (
                ("image", kind, topic),
                ("depth", Image, camera_topic(self.camera, "depth")),
                ("camera_info", CameraInfo, camera_topic(self.camera, "camera_info")),
            )
        }
        self._subs = [f.sub for f in filters.values()]
        self.monitor = SyncMonitor({role: f.sub.topic_name for role, f in filters.items()}, self._params.sync_slop)
        for role, f in filters.items():
            f.registerCallback(lambda msg, r=role: self.monitor.saw(r, stamp_to_ns(msg.header.stamp)))
        self._sync = message_filters.ApproximateTimeSynchronizer(
            list(filters.values()), self._params.sync_queue, self._params.sync_slop
        )
        self._sync.registerCallback(self._on_set)

    def stop(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs, self._sync = [], None

    destroy = stop  # nothing else is held

    # ------------------------------------------------------------ callbacks
    def _on_colour(self, msg: Image | CompressedImage) -> None:
        job = self._colour_job(msg, time.monotonic())
        if job is not None:
            self._submit(job)

    def _on_set(self, colour: Image | CompressedImage, depth: Image, info: CameraInfo) -> None:
        """A synchronised colour image, depth image and camera_info."""
        job = self._colour_job(colour, time.monotonic())
        if job is None:
            return
        try:  # the fields only: the depth is decoded when the frame's results are published
            check_depth(depth.encoding, depth.height, depth.width, depth.step, len(depth.data))
            Intrinsics.from_camera_info(info.k, info.width, info.height, (info.height, info.width))
        except ValueError as err:
            self._skip(f"{err} (depth {depth.encoding!r} {depth.width}x{depth.height}, step {depth.step})")
            return
        fields = (depth.encoding, depth.height, depth.width, depth.step, depth.data, bool(depth.is_bigendian))
        job.depth = DepthFrame(lambda: decode_depth(*fields), tuple(info.k), (info.height, info.width))
        self.monitor.paired()
        self._submit(job)

    def _colour_job(self, msg: Image | CompressedImage, received: float) -> FrameJob | None:
        """The frame's job with its decoder, or None (skipped and logged) when its fields are bad."""
        stamp = stamp_to_ns(msg.header.stamp)
        if isinstance(msg, CompressedImage):
            try:  # the format and the data's ends only: decoded if the tracker takes this frame
                check_compressed(msg.format, msg.data)
            except ValueError as err:
                self._skip(str(err))
                return None
            decode = partial(decode_compressed, msg.format, msg.data)
            return FrameJob(decode, stamp, msg.header, received, camera=self.camera)
        try:  # the fields only: the pixels are decoded if the tracker takes this frame
            check_image(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        except ValueError as err:
            self._skip(f"{err} (encoding {msg.encoding!r}, {msg.width}x{msg.height}, step {msg.step})")
            return None
        return FrameJob(partial(image_to_rgb, msg), stamp, msg.header, received, camera=self.camera)

    def _skip(self, problem: str) -> None:
        self.frames_skipped += 1
        where = on_camera(self.camera)
        self._warn_once(f"frame skipped{where}: {problem}")
