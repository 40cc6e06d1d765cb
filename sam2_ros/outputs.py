"""A camera's outputs: its publishers, and the messages of each processed frame, built only
for the outputs someone reads; with ``depth`` on, each object's 3D place and the 3D outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from sam2_model import FrameResult
from sam2_model.geometry import ObjectGeometry, fit_depth, frame_geometry

from .conversions import array_to_image, tracked_object, tracked_object_array
from .image_codec import label_image
from .jobs import FrameJob, OutputStats
from .log_once import LogOnce
from .msg import TrackedObjectArray
from .overlay import render_overlay
from .params import NodeParams
from .topics import on_camera, private_topic

__all__ = ["FrameOutputs"]


class FrameOutputs:
    """``~/objects``, ``~/mask``, ``~/overlay`` and ``~/detections`` (where vision_msgs is
    installed), created at configure; ``~/<camera>/objects``... for a named camera.

    With ``depth`` on, also ``~/markers``, ``~/points`` and ``~/detections_3d``
    (:class:`~sam2_ros.outputs_3d.Outputs3D`).

    Args:
        node: the node that owns the publishers.
        vision: the ``sam2_ros.detections`` module, or ``None`` without vision_msgs.
        params: the node's parameters now (``publish_overlay`` and ``depth_*`` change at run time).
        warn_once: logs a kind of problem once.
        camera: the camera's name (``""``: the node's one unnamed camera).
    """

    def __init__(
        self,
        node: Node,
        vision: ModuleType | None,
        params: Callable[[], NodeParams],
        warn_once: LogOnce,
        camera: str = "",
    ) -> None:
        self._node, self._vision, self._params, self._warn_once = node, vision, params, warn_once
        self.camera = camera
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._objects = node.create_publisher(TrackedObjectArray, private_topic(camera, "objects"), reliable)
        self._mask = node.create_publisher(Image, private_topic(camera, "mask"), qos_profile_sensor_data)
        self._overlay = node.create_publisher(Image, private_topic(camera, "overlay"), qos_profile_sensor_data)
        self._detections = None
        if vision is not None:
            topic = private_topic(camera, "detections")
            self._detections = node.create_publisher(vision.Detection2DArray, topic, reliable)
        self.built = OutputStats()  # images built for the optional outputs
        self._outputs_3d = None
        if params().depth:
            from .outputs_3d import Outputs3D  # visualization_msgs: only with depth on

            self._outputs_3d = Outputs3D(node, vision, camera)

    def publish(self, job: FrameJob, result: FrameResult, labels: dict[int, str]) -> None:
        """One processed frame's messages, each with the input header (called in the
        worker's publishing thread, in frame order)."""
        header = job.header
        geometry = self._geometry(job, result) if job.depth is not None else {}
        objects = [tracked_object(r, labels.get(i, ""), header, geometry.get(i)) for i, r in result.objects.items()]
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
        if self._params().publish_overlay and self._overlay.get_subscription_count() > 0:
            self._overlay.publish(array_to_image(render_overlay(job.image, result.objects, labels), "rgb8", header))
            self.built.overlays += 1
        if self._outputs_3d is not None:
            self._outputs_3d.publish(header, objects, geometry)

    def _geometry(self, job: FrameJob, result: FrameResult) -> dict[int, ObjectGeometry]:
        """Every object's 3D place from the frame's synchronised depth."""
        hw = job.image.shape[:2]
        raw = job.depth.decode()
        if raw.shape != hw:
            where = on_camera(self.camera)
            self._warn_once(
                f"depth image{where} {raw.shape[1]}x{raw.shape[0]} scaled to the colour image's {hw[1]}x{hw[0]} "
                "(nearest neighbour; the intrinsics are the colour camera's)",
                key=f"depth size {self.camera}",
            )
        intrinsics = job.depth.intrinsics(hw)
        return frame_geometry(result.objects, fit_depth(raw, hw), intrinsics, self._params().depth_settings())

    @property
    def clouds_built(self) -> int:
        """``~/points`` messages built (only while someone subscribes)."""
        return self._outputs_3d.clouds_built if self._outputs_3d is not None else 0

    def destroy(self) -> None:
        if self._outputs_3d is not None:
            self._outputs_3d.destroy()
        for pub in (self._objects, self._mask, self._overlay, self._detections):
            if pub is not None:
                self._node.destroy_publisher(pub)
