"""The camera input: the image subscription (raw or compressed), the cheap checks on
receipt, and the hand-over of each frame to the worker, to be decoded only if the tracker
takes it. A node with several cameras would have several of these."""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .conversions import image_to_rgb, stamp_to_ns
from .image_codec import check_compressed, check_image, decode_compressed
from .jobs import FrameJob
from .log_once import LogOnce
from .params import NodeParams

__all__ = ["CameraInput"]


class CameraInput:
    """Subscribes (while started) to ``image``, or ``image/compressed`` with
    ``image_transport: compressed``, and hands each well-formed frame to ``submit``.

    Args:
        node: the node that owns the subscription.
        params: the node's parameters (transport and reliability).
        submit: takes each frame's :class:`FrameJob` (the worker's newest-frame slot).
        warn_once: logs a kind of bad frame once.
        group: the callback group of the image callback.
    """

    def __init__(
        self,
        node: Node,
        params: NodeParams,
        submit: Callable[[FrameJob], None],
        warn_once: LogOnce,
        group: object,
    ) -> None:
        self._node, self._params, self._submit, self._warn_once, self._group = node, params, submit, warn_once, group
        self._sub = None
        self.frames_skipped = 0  # images whose fields cannot be decoded

    def start(self) -> str:
        """Subscribe; returns the topic's full name (after remapping)."""
        reliable = self._params.qos_reliability == "reliable"
        qos = QoSProfile(
            depth=qos_profile_sensor_data.depth,
            history=qos_profile_sensor_data.history,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        if self._params.image_transport == "compressed":
            kind, topic, callback = CompressedImage, "image/compressed", self._on_compressed
        else:
            kind, topic, callback = Image, "image", self._on_image
        self._sub = self._node.create_subscription(kind, topic, callback, qos, callback_group=self._group)
        return self._sub.topic_name  # rclpy's resolve_topic_name ignores remapping; this does not

    def stop(self) -> None:
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
            self._sub = None

    destroy = stop  # nothing else is held

    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        try:  # the fields only: the pixels are decoded if the tracker takes this frame
            check_image(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        except ValueError as err:
            self._skip(f"{err} (encoding {msg.encoding!r}, {msg.width}x{msg.height}, step {msg.step})")
            return
        self._hand_over(lambda: image_to_rgb(msg), msg.header, received)

    def _on_compressed(self, msg: CompressedImage) -> None:
        received = time.monotonic()
        try:  # the format and the data's ends only: decoded if the tracker takes this frame
            check_compressed(msg.format, msg.data)
        except ValueError as err:
            self._skip(str(err))
            return
        self._hand_over(lambda: decode_compressed(msg.format, msg.data), msg.header, received)

    def _hand_over(self, decode: Callable, header: Header, received: float) -> None:
        self._submit(FrameJob(decode, stamp_to_ns(header.stamp), header, received))

    def _skip(self, problem: str) -> None:
        self.frames_skipped += 1
        self._warn_once(f"frame skipped: {problem}")
