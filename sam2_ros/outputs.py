"""The node's outputs: its publishers, and the messages of each processed frame, built only
for the outputs someone reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from sam2_model import FrameResult

from .conversions import array_to_image, tracked_object, tracked_object_array
from .image_codec import label_image
from .jobs import FrameJob, OutputStats
from .msg import TrackedObjectArray
from .overlay import render_overlay

__all__ = ["FrameOutputs"]


class FrameOutputs:
    """``~/objects``, ``~/mask``, ``~/overlay``, ``~/detections`` (where vision_msgs is
    installed) and ``/diagnostics``, created at configure.

    Args:
        node: the node that owns the publishers.
        vision: the ``sam2_ros.detections`` module, or ``None`` without vision_msgs.
        overlay_on: whether ``publish_overlay`` is set now (a run-time parameter).
    """

    def __init__(self, node: Node, vision: ModuleType | None, overlay_on: Callable[[], bool]) -> None:
        self._node, self._vision, self._overlay_on = node, vision, overlay_on
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._objects = node.create_publisher(TrackedObjectArray, "~/objects", reliable)
        self._mask = node.create_publisher(Image, "~/mask", qos_profile_sensor_data)
        self._overlay = node.create_publisher(Image, "~/overlay", qos_profile_sensor_data)
        self._diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", reliable)
        self._detections = None
        if vision is not None:
            self._detections = node.create_publisher(vision.Detection2DArray, "~/detections", reliable)
        self.built = OutputStats()  # images built for the optional outputs

    def publish(self, job: FrameJob, result: FrameResult, labels: dict[int, str]) -> None:
        """One processed frame's messages, each with the input header (called in the
        worker's publishing thread, in frame order)."""
        header = job.header
        objects = [tracked_object(r, labels.get(i, ""), header) for i, r in result.objects.items()]
        latency_ms = (time.monotonic() - job.received) * 1e3
        self._objects.publish(tracked_object_array(header, result.frame_index, latency_ms, objects))
        if self._detections is not None and self._detections.get_subscription_count() > 0:
            self._detections.publish(self._vision.detections_2d(header, objects))
        if self._mask.get_subscription_count() > 0:  # no work for outputs nobody reads
            label = result.label_image  # computed with the masks (on the GPU when there is one)
            if label is None or label.dtype != np.uint8:
                label = label_image({i: r.mask for i, r in result.objects.items()}, job.image.shape[:2])
            self._mask.publish(array_to_image(label, "mono8", header))
            self.built.label_images += 1
        if self._overlay_on() and self._overlay.get_subscription_count() > 0:
            self._overlay.publish(array_to_image(render_overlay(job.image, result.objects, labels), "rgb8", header))
            self.built.overlays += 1

    def publish_diagnostics(self, msg: DiagnosticArray) -> None:
        self._diagnostics.publish(msg)

    def destroy(self) -> None:
        for pub in (self._objects, self._mask, self._overlay, self._diagnostics, self._detections):
            if pub is not None:
                self._node.destroy_publisher(pub)
