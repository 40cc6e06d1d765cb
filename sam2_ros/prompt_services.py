"""How prompts reach the tracker: the ``~/add_prompt``, ``~/remove_object`` and ``~/reset``
services (and ``~/<camera>/reset`` for each named camera), clicks on ``~/click`` (or
``~/<camera>/click``), and a detector's boxes on ``detections_topic`` (or
``<camera>/<detections_topic>``). Every call gets an answer; bad requests are refused naming
the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future
from types import ModuleType

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from .conversions import mask_from_msg, stamp_to_ns, tracked_object
from .detector_input import DetectionReport
from .image_codec import box_from_roi
from .jobs import MAX_OBJECT_ID, PromptOutcome, PromptRequest
from .log_once import LogOnce
from .params import NodeParams, service_queue_depth
from .srv import AddPrompt, RemoveObject
from .topics import camera_topic, on_camera, private_topic
from .worker import TrackerWorker

__all__ = ["PromptServices", "prompt_request"]

DETECTION_TYPE = "vision_msgs/msg/Detection2DArray"


class PromptServices:
    """The services (created at once) and the prompt subscriptions (while started).

    Args:
        node: the node that owns them.
        worker: the tracker's worker, which applies every prompt between two frames.
        params: the node's parameters now (``prompt_timeout`` may change at run time).
        vision: the ``sam2_ros.detections`` module, or ``None`` without vision_msgs.
        warn_once: logs a kind of bad detection once.
        group: the callback group of the services and subscriptions (reentrant: a call
            waits for the tracker while the others go on).
    """

    def __init__(
        self,
        node: Node,
        worker: TrackerWorker,
        params: Callable[[], NodeParams],
        vision: ModuleType | None,
        warn_once: LogOnce,
        group: object,
    ) -> None:
        self._node, self._worker, self._params, self._vision = node, worker, params, vision
        self._warn_once, self._group = warn_once, group
        self._subs: list = []
        self._detector_subs: dict[str, object] = {}  # camera -> its detector subscription
        # a request queue for a planner prompting every object at once, and as many more
        # calls again (the default of 10 silently drops the rest of a burst)
        depth = service_queue_depth(params().max_objects)
        queue = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        services = (
            (AddPrompt, "~/add_prompt", self._on_add_prompt),
            (RemoveObject, "~/remove_object", self._on_remove_object),
            (Trigger, "~/reset", self._on_reset),
        )
        # one camera's reset: ~/front/reset
        services += tuple(
            (Trigger, private_topic(c, "reset"), lambda req, resp, c=c: self._on_reset(req, resp, c))
            for c in worker.cameras
            if c
        )
        self._services = [
            node.create_service(kind, name, fn, qos_profile=queue, callback_group=group) for kind, name, fn in services
        ]

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Subscribe to each camera's ``~/click`` and, when set, its ``detections_topic``."""
        node, topic = self._node, self._params().detections_topic
        for camera in self._worker.cameras:
            self._subs.append(
                node.create_subscription(
                    PointStamped,
                    private_topic(camera, "click"),
                    lambda msg, c=camera: self._on_click(msg, c),
                    10,
                    callback_group=self._group,
                )
            )
            if topic:
                self._subscribe_detector(camera_topic(camera, topic), camera)

    def stop(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs, self._detector_subs = [], {}

    def destroy(self) -> None:
        self.stop()
        for srv in self._services:
            self._node.destroy_service(srv)
        self._services = []

    def _subscribe_detector(self, topic: str, camera: str) -> None:
        """A topic this process already uses with another type (the camera's, say) cannot be
        subscribed: logged, and tracking goes on without the detector."""
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        try:
            sub = self._node.create_subscription(
                self._vision.Detection2DArray,
                topic,
                lambda msg: self._worker.add_detections(self._vision.detection_batch(msg), camera),
                qos,
                callback_group=self._group,
            )
        except RuntimeError as err:  # rclpy's RCLError
            self._node.get_logger().error(f"detections_topic '{topic}': cannot subscribe, no detector boxes: {err}")
            return
        self._detector_subs[camera] = sub
        self._subs.append(sub)
        where = f" for camera {camera}" if camera else ""
        self._node.get_logger().info(f"detector boxes{where} from '{sub.topic_name}'")

    # ------------------------------------------------------------ services
    def _wait(self, fut: Future) -> PromptOutcome:
        timeout = self._params().prompt_timeout
        try:
            return fut.result(timeout=timeout)
        except TimeoutError:
            return PromptOutcome(False, f"timed out after {timeout:.1f} s waiting for the tracker")

    def _on_add_prompt(self, req: AddPrompt.Request, resp: AddPrompt.Response) -> AddPrompt.Response:
        try:
            request = prompt_request(req)
        except ValueError as err:
            resp.success, resp.message = False, str(err)
            return resp
        outcome = self._wait(self._worker.add_prompt(request))
        resp.success, resp.message = outcome.success, outcome.message
        if outcome.success and outcome.result is not None:
            resp.object = tracked_object(outcome.result, outcome.label, outcome.header)
        return resp

    def _on_remove_object(self, req: RemoveObject.Request, resp: RemoveObject.Response) -> RemoveObject.Response:
        outcome = self._wait(self._worker.remove_object(int(req.object_id), req.camera))
        resp.success, resp.message = outcome.success, outcome.message
        return resp

    def _on_reset(self, req: Trigger.Request, resp: Trigger.Response, camera: str | None = None) -> Trigger.Response:
        """``~/reset`` (every camera) or ``~/<camera>/reset``."""
        outcome = self._wait(self._worker.reset(camera))
        resp.success, resp.message = outcome.success, outcome.message
        if outcome.success and camera:
            resp.message = f"camera {camera}: {outcome.message}"
        return resp

    # ------------------------------------------------------------ clicks and detections
    def _on_click(self, msg: PointStamped, camera: str) -> None:
        request = PromptRequest(
            obj_id=None,
            stamp_ns=stamp_to_ns(msg.header.stamp),
            points=np.array([[msg.point.x, msg.point.y]], dtype=np.float64),
            labels=np.array([1]),
            camera=camera,
        )
        self._worker.add_prompt(request).add_done_callback(lambda fut: self._log_click(fut, camera))

    def _log_click(self, fut: Future, camera: str) -> None:
        outcome: PromptOutcome = fut.result()
        logger = self._node.get_logger()
        where = on_camera(camera)
        # one call site per severity: rclpy refuses a second severity from the same line
        if outcome.success:
            logger.info(f"click{where}: {outcome.message}")
        else:
            logger.warning(f"click{where} refused: {outcome.message}")

    def log_detections(self, report: DetectionReport) -> None:
        """What a message of detector boxes did (called in the inference thread)."""
        where = f" (camera {report.camera})" if report.camera else ""
        for line in report.done:
            self._node.get_logger().info(f"detector{where}: {line}")
        for problem in report.problems:
            self._warn_once(f"detections{where} ignored: {problem.message}", key=f"{report.camera} {problem.key}")

    def detector_diagnostics(self, camera: str = "") -> dict[str, object]:
        """A camera's detector counters; warns once when its topic carries another type (a
        publisher of another type is never matched: its messages silently never arrive)."""
        sub = self._detector_subs.get(camera)
        key = f"detections_topic type {camera}"
        if sub is not None and not self._warn_once.seen(key):
            for info in self._node.get_publishers_info_by_topic(sub.topic_name):
                if info.topic_type != DETECTION_TYPE:
                    publisher = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                    self._warn_once(
                        f"detections_topic '{sub.topic_name}' is published as {info.topic_type} by '{publisher}', "
                        f"not {DETECTION_TYPE}: its messages are not received",
                        key=key,
                    )
        stats = self._worker.camera(camera).detector_stats
        return {f"detections_{f.name}": getattr(stats, f.name) for f in dataclasses.fields(stats)}


def prompt_request(req: AddPrompt.Request) -> PromptRequest:
    """Check the request's own fields; image-dependent checks happen in the tracker."""
    if not 1 <= req.object_id <= MAX_OBJECT_ID:
        raise ValueError(f"object_id: must be in 1..{MAX_OBJECT_ID}, got {req.object_id}")
    points = np.array([[p.x, p.y] for p in req.points], dtype=np.float64).reshape(-1, 2)
    labels = np.array(list(req.point_labels), dtype=np.int64)
    roi = req.box
    box = box_from_roi(roi.x_offset, roi.y_offset, roi.width, roi.height) if roi.width or roi.height else None
    mask = None
    if req.mask.width or req.mask.height or len(req.mask.data):
        # its size is checked against the prompted frame by the tracker
        mask = mask_from_msg(req.mask, (req.mask.height, req.mask.width))
    return PromptRequest(
        obj_id=int(req.object_id),
        stamp_ns=stamp_to_ns(req.stamp),
        label=req.label,
        points=points if len(points) else None,
        labels=labels if len(labels) or len(points) else None,
        box=box,
        mask=mask,
        clear_previous=bool(req.clear_previous),
        camera=req.camera,
    )
