"""The node's ``/diagnostics``: one status per camera (rate, latency, dropped frames,
objects, detector and synchronisation counters) and one for the node (device, model, the
inference thread's rounds and encoder batch size). A node without ``cameras`` publishes
one status with both, as it always has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from .camera_input import CameraInput
from .camera_session import CameraSession
from .outputs import FrameOutputs
from .worker import TrackerWorker

__all__ = ["CameraParts", "NodeDiagnostics"]


@dataclass
class CameraParts:
    """What the node holds for one camera besides its worker session."""

    name: str  # "" for the node's one unnamed camera
    input: CameraInput  # its image (and depth) subscriptions
    outputs: FrameOutputs  # its publishers
    sync_warned: bool = False  # a stall of its depth synchronisation was logged


@dataclass(frozen=True)
class ModelInfo:
    """What the node reports about its model."""

    device: str  # e.g. "cuda:0 (bf16, CUDA graphs)"
    model: str  # model_config
    warmup_s: float  # seconds of warm-up at configure


class NodeDiagnostics:
    """Publishes the statuses on ``/diagnostics``.

    Args:
        node: the node that owns the publisher.
        info: the model's description.
        detector: a camera's detector counters (``None`` without ``detections_topic``).
    """

    def __init__(self, node: Node, info: ModelInfo, detector: Callable[[str], dict[str, object]] | None) -> None:
        self._node, self._info, self._detector = node, info, detector
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", reliable)

    def publish(self, worker: TrackerWorker, cameras: list[CameraParts]) -> None:
        name, info = self._node.get_name(), self._info
        overall = {
            "device": info.device,
            "model": info.model,
            "warmup_s": f"{info.warmup_s:.1f}",
            "rounds": worker.rounds.rounds,
            "rounds_hz": f"{worker.rounds.rate_hz:.2f}",
            "encoder_batch": f"{worker.rounds.mean_batch:.2f}",
        }
        statuses = [self._camera_status(worker.camera(c.name), c) for c in cameras]
        if len(cameras) == 1 and not cameras[0].name:  # one status, as a single-camera node always had
            only = statuses[0]
            only.name = f"{name}: tracking"
            only.values += [KeyValue(key=k, value=str(v)) for k, v in overall.items()]
        else:
            for camera, status in zip(cameras, statuses, strict=True):
                status.name = f"{name}: camera {camera.name}"
            overall["cameras"] = ", ".join(c.name for c in cameras)
            level = max(s.level for s in statuses)
            problems = [f"{c.name}: {s.message}" for c, s in zip(cameras, statuses, strict=True) if s.level]
            message = "; ".join(problems) if problems else "tracking"
            statuses.insert(0, _status(f"{name}: tracking", info.device, level, message, overall))
        header = Header(stamp=self._node.get_clock().now().to_msg())
        self._pub.publish(DiagnosticArray(header=header, status=statuses))

    def _camera_status(self, session: CameraSession, camera: CameraParts) -> DiagnosticStatus:
        s, built = session.stats, camera.outputs.built
        values: dict[str, object] = {
            "rate_hz": f"{s.rate_hz:.2f}",
            "latency_ms": f"{s.last_latency_ms:.1f}",
            "processing_ms": f"{s.processing_ms:.1f}",
            "tracking_ms": f"{s.tracking_ms:.1f}",
            "publishing_ms": f"{s.publishing_ms:.1f}",
            "frames_received": s.frames_received,
            "frames_processed": s.frames_processed,
            "frames_dropped": s.frames_dropped,
            "frames_skipped": camera.input.frames_skipped,
            "frames_failed": s.frames_failed,
            "frames_decoded": s.frames_decoded,
            "label_images_built": built.label_images,
            "overlays_built": built.overlays,
            "objects": len(session.tracker.object_ids),
        }
        if self._detector is not None:
            values.update(self._detector(camera.name))
        level = DiagnosticStatus.OK if s.frames_failed == 0 else DiagnosticStatus.WARN
        message = "tracking"
        monitor = camera.input.monitor
        if monitor is not None:  # depth on
            values.update(sets_synchronised=monitor.sets, sync_rate_hz=f"{monitor.rate_hz():.2f}")
            values["point_clouds_built"] = camera.outputs.clouds_built
            problem = monitor.problem()
            if problem is not None:
                level, message = DiagnosticStatus.WARN, problem
                if not camera.sync_warned:  # once per stall
                    self._node.get_logger().warning(problem)
            camera.sync_warned = problem is not None
        return _status("", self._info.device, level, message, values)

    def destroy(self) -> None:
        self._node.destroy_publisher(self._pub)


def _status(name: str, hardware_id: str, level: bytes, message: str, values: dict[str, object]) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
