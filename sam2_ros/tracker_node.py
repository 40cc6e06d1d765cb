"""The ``sam2_tracker`` lifecycle node: parameters, QoS, publishers, services, lifecycle.

All logic lives in plain-Python modules (``worker``, ``image_codec``, ``overlay``,
``conversions``); this file only wires them to ROS 2.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from sam2_model import CheckpointError, FrameResult, SAM2Tracker, build_sam2, resolve_device
from sam2_model.tracker.options import RUNTIME_OPTIONS

from .conversions import (
    array_to_image,
    diagnostics,
    image_to_rgb,
    mask_from_msg,
    stamp_to_ns,
    tracked_object,
    tracked_object_array,
)
from .detector_input import DetectionReport
from .image_codec import box_from_roi, check_compressed, check_image, decode_compressed, label_image
from .msg import TrackedObjectArray
from .overlay import render_overlay
from .params import PARAMS, RUNTIME_PARAMS, NodeParams, service_queue_depth
from .srv import AddPrompt, RemoveObject
from .worker import MAX_OBJECT_ID, FrameJob, OutputStats, PromptOutcome, PromptRequest, TrackerWorker

NODE_NAME = "sam2_tracker"
NO_CHECKPOINT_HELP = (
    "no checkpoint configured. Download an official SAM 2.1 checkpoint (e.g. sam2.1_hiera_tiny.pt from "
    "https://github.com/facebookresearch/sam2, 'Download Checkpoints') and set checkpoint:=/path/to/file.pt "
    "(with model_config:=sam2.1_hiera_tiny matching it); for tests only, allow_random_weights:=true runs "
    "with random weights"
)


class TrackerNode(LifecycleNode):
    """Tracks prompted objects on ``image`` and publishes ``~/objects``, ``~/mask``,
    ``~/overlay`` and ``/diagnostics``; prompts come through ``~/add_prompt`` and ``~/click``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMS:
            # a string array is declared by type: rclpy takes an empty list for a byte array
            default = Parameter.Type.STRING_ARRAY if isinstance(spec.default, tuple) else spec.default
            self.declare_parameter(spec.name, default, _descriptor(spec))
        self.declare_parameter(
            "autostart",
            True,
            ParameterDescriptor(description="main() configures and activates the node", read_only=True),
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._params: NodeParams | None = None
        self._worker: TrackerWorker | None = None
        self._device = ""
        self._subs: list = []
        self._detector_sub = None  # the detector's boxes (one of _subs), when detections_topic is set
        self._pubs: dict[str, object] = {}
        self._prompt_services: list = []
        self._timer = None
        self._frame_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()
        self._logged_problems: set[str] = set()
        self._frames_skipped = 0
        self._built = OutputStats()
        self._detections = None  # the vision_msgs output module, where vision_msgs is installed
        # the one thread that builds, warms up and runs the model (see sam2_ros.worker)
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2_inference")

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            params = NodeParams.from_values({s.name: self._value(s) for s in PARAMS})
            params.validate()
            if not params.checkpoint and not params.allow_random_weights:
                raise ValueError(NO_CHECKPOINT_HELP)
            self._detections = _vision_msgs()
            if params.detections_topic and self._detections is None:
                raise ValueError(
                    f"detections_topic: {params.detections_topic!r} needs the vision_msgs package, which is not "
                    "installed (apt install ros-$ROS_DISTRO-vision-msgs), or leave detections_topic empty"
                )
            device = resolve_device(params.device)
            precision = (
                params.precision if params.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
            )
            graphs = params.cuda_graphs and device.type == "cuda"
            if params.compile:
                self.get_logger().info("compiling the model (torch.compile): this takes a while")
            # on the inference thread: all PyTorch work of the node stays on one thread
            tracker, loaded, warmup = self._inference.submit(_build_tracker, params, device, precision, graphs).result()
        except (CheckpointError, ValueError) as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._params = params
        extras = "".join(f", {name}" for name, on in (("compiled", params.compile), ("CUDA graphs", graphs)) if on)
        self._device = f"{device} ({precision}{extras})"
        self._warmup_seconds = warmup
        self._worker = TrackerWorker(
            tracker, self._publish_frame, self._warn_once, self._inference, self._log_detections
        )
        self._worker.detector_settings = params.detector_settings()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if self._detections is None:
            self.get_logger().info("~/detections is off: the vision_msgs package is not installed")
        self._pubs = {
            "objects": self.create_publisher(TrackedObjectArray, "~/objects", reliable),
            "mask": self.create_publisher(Image, "~/mask", qos_profile_sensor_data),
            "overlay": self.create_publisher(Image, "~/overlay", qos_profile_sensor_data),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", reliable),
        }
        if self._detections is not None:
            self._pubs["detections"] = self.create_publisher(
                self._detections.Detection2DArray, "~/detections", reliable
            )
        # a request queue for a planner prompting every object at once, and as many more
        # calls again (the default of 10 silently drops the rest of a burst)
        queue = QoSProfile(depth=service_queue_depth(params.max_objects), reliability=ReliabilityPolicy.RELIABLE)
        services = (
            (AddPrompt, "~/add_prompt", self._on_add_prompt),
            (RemoveObject, "~/remove_object", self._on_remove_object),
            (Trigger, "~/reset", self._on_reset),
        )
        self._prompt_services = [
            self.create_service(kind, name, fn, qos_profile=queue, callback_group=self._service_group)
            for kind, name, fn in services
        ]
        mode = "random weights" if not params.checkpoint else params.checkpoint
        self.get_logger().info(
            f"{params.model_config} ({mode}) loaded on {self._device} at {tracker.model.image_size}px "
            f"in {loaded:.1f} s, warm-up {warmup:.1f} s"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = self._params
        qos = QoSProfile(
            depth=qos_profile_sensor_data.depth,
            history=qos_profile_sensor_data.history,
            reliability=ReliabilityPolicy.RELIABLE
            if params.qos_reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        compressed = params.image_transport == "compressed"
        kind, topic, callback = (
            (CompressedImage, "image/compressed", self._on_compressed)
            if compressed
            else (Image, "image", self._on_image)
        )
        self._subs = [
            self.create_subscription(kind, topic, callback, qos, callback_group=self._frame_group),
            self.create_subscription(PointStamped, "~/click", self._on_click, 10, callback_group=self._service_group),
        ]
        if params.detections_topic:
            self._subscribe_detector(params.detections_topic)
        self._worker.start()
        self._timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"active: tracking on '{self._subs[0].topic_name}'")  # remapped
        return super().on_activate(state)

    def _subscribe_detector(self, topic: str) -> None:
        """Subscribe to the detector's boxes; a topic this process already uses with another
        type (the camera's, say) cannot be subscribed: logged, and tracking goes on without."""
        try:
            sub = self.create_subscription(
                self._detections.Detection2DArray,
                topic,
                self._on_detections,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
                callback_group=self._service_group,
            )
        except RuntimeError as err:  # rclpy's RCLError
            self.get_logger().error(f"detections_topic '{topic}': cannot subscribe, no detector boxes: {err}")
            return
        self._detector_sub = sub
        self._subs.append(sub)
        self.get_logger().info(f"detector boxes from '{sub.topic_name}'")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs, self._detector_sub = [], None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._worker.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the inference thread (it finishes its frame) and release the model."""
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs, self._detector_sub = [], None
        self._release()
        self._inference.shutdown(wait=False)

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        for srv in self._prompt_services:
            self.destroy_service(srv)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._prompt_services, self._pubs = [], {}

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, changes: list) -> SetParametersResult:
        for p in changes:
            spec = next((s for s in PARAMS if s.name == p.name), None)
            if spec is not None and spec.choices and p.value not in spec.choices:
                return SetParametersResult(successful=False, reason=f"{p.name}: must be one of {spec.choices}")
        worker = self._worker
        if worker is not None and self._params is not None:
            updates = {p.name: _plain(p) for p in changes if p.name in RUNTIME_PARAMS}
            options = {k: v for k, v in updates.items() if k in RUNTIME_OPTIONS}
            try:
                if options:
                    worker.tracker.update_options(**options)
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
            self._params = dataclasses.replace(self._params, **updates)
            worker.detector_settings = self._params.detector_settings()
        return SetParametersResult(successful=True)

    def _value(self, spec) -> object:
        """A parameter's value; an unset string array is empty."""
        if isinstance(spec.default, tuple):
            return self.get_parameter_or(spec.name, Parameter(spec.name, Parameter.Type.STRING_ARRAY, [])).value
        return self.get_parameter(spec.name).value

    # ------------------------------------------------------------------ inputs
    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        try:  # the fields only: the pixels are decoded if the tracker takes this frame
            check_image(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        except ValueError as err:
            self._skip_frame(f"{err} (encoding {msg.encoding!r}, {msg.width}x{msg.height}, step {msg.step})")
            return
        self._submit(lambda: image_to_rgb(msg), msg.header, received)

    def _on_compressed(self, msg: CompressedImage) -> None:
        received = time.monotonic()
        try:  # the format and the data's ends only: decoded if the tracker takes this frame
            check_compressed(msg.format, msg.data)
        except ValueError as err:
            self._skip_frame(str(err))
            return
        self._submit(lambda: decode_compressed(msg.format, msg.data), msg.header, received)

    def _submit(self, decode, header: Header, received: float) -> None:
        worker = self._worker
        if worker is not None:
            worker.submit_frame(FrameJob(decode, stamp_to_ns(header.stamp), header, received))

    def _skip_frame(self, problem: str) -> None:
        self._frames_skipped += 1
        self._warn_once(f"frame skipped: {problem}")

    def _warn_once(self, message: str, key: str | None = None) -> None:
        """Log ``message`` the first time its ``key`` (default: the message) comes (bad frames
        and detections come at the camera's rate)."""
        key = message if key is None else key
        if key not in self._logged_problems:
            self._logged_problems.add(key)
            self.get_logger().warning(f"{message}; logged once")

    def _on_detections(self, msg) -> None:
        """A detector's ``Detection2DArray``: applied by the inference thread on its frame."""
        worker = self._worker
        if worker is not None:
            worker.add_detections(self._detections.detection_batch(msg))

    def _log_detections(self, report: DetectionReport) -> None:
        """What a batch of detector boxes did (called in the inference thread)."""
        for line in report.done:
            self.get_logger().info(f"detector: {line}")
        for problem in report.problems:
            self._warn_once(f"detections ignored: {problem.message}", key=problem.key)

    def _on_click(self, msg: PointStamped) -> None:
        worker = self._worker
        if worker is None:
            return
        request = PromptRequest(
            obj_id=None,
            stamp_ns=stamp_to_ns(msg.header.stamp),
            points=np.array([[msg.point.x, msg.point.y]], dtype=np.float64),
            labels=np.array([1]),
        )
        worker.add_prompt(request).add_done_callback(self._log_click)

    def _log_click(self, fut) -> None:
        outcome: PromptOutcome = fut.result()
        # one call site per severity: rclpy refuses a second severity from the same line
        if outcome.success:
            self.get_logger().info(f"click: {outcome.message}")
        else:
            self.get_logger().warning(f"click refused: {outcome.message}")

    # ------------------------------------------------------------------ services
    def _wait(self, fut) -> PromptOutcome:
        timeout = self._params.prompt_timeout if self._params is not None else 30.0
        try:
            return fut.result(timeout=timeout)
        except TimeoutError:
            return PromptOutcome(False, f"timed out after {timeout:.1f} s waiting for the tracker")

    def _on_add_prompt(self, req: AddPrompt.Request, resp: AddPrompt.Response) -> AddPrompt.Response:
        worker = self._worker
        if worker is None:
            resp.success, resp.message = False, "the node is not configured"
            return resp
        try:
            request = _prompt_request(req)
        except ValueError as err:
            resp.success, resp.message = False, str(err)
            return resp
        outcome = self._wait(worker.add_prompt(request))
        resp.success, resp.message = outcome.success, outcome.message
        if outcome.success and outcome.result is not None:
            resp.object = tracked_object(outcome.result, outcome.label, outcome.header)
        return resp

    def _on_remove_object(self, req: RemoveObject.Request, resp: RemoveObject.Response) -> RemoveObject.Response:
        if self._worker is None:
            resp.success, resp.message = False, "the node is not configured"
            return resp
        outcome = self._wait(self._worker.remove_object(int(req.object_id)))
        resp.success, resp.message = outcome.success, outcome.message
        return resp

    def _on_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        if self._worker is None:
            resp.success, resp.message = False, "the node is not configured"
            return resp
        outcome = self._wait(self._worker.reset())
        resp.success, resp.message = outcome.success, outcome.message
        return resp

    # ------------------------------------------------------------------ outputs
    def _publish_frame(self, job: FrameJob, result: FrameResult) -> None:
        """Called in the worker's publishing thread for every processed frame, in order."""
        worker, header = self._worker, job.header
        labels = {i: worker.label(i) for i in result.objects} if worker is not None else {}
        objects = [tracked_object(r, labels.get(i, ""), header) for i, r in result.objects.items()]
        latency_ms = (time.monotonic() - job.received) * 1e3
        self._pubs["objects"].publish(tracked_object_array(header, result.frame_index, latency_ms, objects))
        detections = self._pubs.get("detections")
        if detections is not None and detections.get_subscription_count() > 0:
            detections.publish(self._detections.detections_2d(header, objects))
        mask = self._pubs["mask"]
        if mask.get_subscription_count() > 0:  # no work for outputs nobody reads
            label = result.label_image  # computed with the masks (on the GPU when there is one)
            if label is None or label.dtype != np.uint8:
                label = label_image({i: r.mask for i, r in result.objects.items()}, job.image.shape[:2])
            mask.publish(array_to_image(label, "mono8", header))
            self._built.label_images += 1
        overlay = self._pubs["overlay"]
        if self._params.publish_overlay and overlay.get_subscription_count() > 0:
            overlay.publish(array_to_image(render_overlay(job.image, result.objects, labels), "rgb8", header))
            self._built.overlays += 1

    def _detector_diagnostics(self) -> dict[str, object]:
        """The detector input's counters; warns once when its topic carries another type (a
        publisher of another type is never matched: its messages silently never arrive)."""
        sub, expected = self._detector_sub, "vision_msgs/msg/Detection2DArray"
        if sub is not None and "detections_topic type" not in self._logged_problems:
            for info in self.get_publishers_info_by_topic(sub.topic_name):
                if info.topic_type != expected:
                    publisher = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                    self._warn_once(
                        f"detections_topic '{sub.topic_name}' is published as {info.topic_type} by '{publisher}', "
                        f"not {expected}: its messages are not received",
                        key="detections_topic type",
                    )
        stats = self._worker.detector_stats
        return {f"detections_{f.name}": getattr(stats, f.name) for f in dataclasses.fields(stats)}

    def _publish_diagnostics(self) -> None:
        worker = self._worker
        if worker is None or "diagnostics" not in self._pubs:
            return
        s = worker.stats
        values = {
            "rate_hz": f"{s.rate_hz:.2f}",
            "latency_ms": f"{s.last_latency_ms:.1f}",
            "processing_ms": f"{s.processing_ms:.1f}",
            "tracking_ms": f"{s.tracking_ms:.1f}",
            "publishing_ms": f"{s.publishing_ms:.1f}",
            "frames_received": s.frames_received,
            "frames_processed": s.frames_processed,
            "frames_dropped": s.frames_dropped,
            "frames_skipped": self._frames_skipped,
            "frames_failed": s.frames_failed,
            "frames_decoded": s.frames_decoded,
            "label_images_built": self._built.label_images,
            "overlays_built": self._built.overlays,
            "objects": len(worker.tracker.object_ids),
            "device": self._device,
            "model": self._params.model_config,
            "warmup_s": f"{self._warmup_seconds:.1f}",
        }
        if self._params.detections_topic:
            values.update(self._detector_diagnostics())
        level = DiagnosticStatus.OK if s.frames_failed == 0 else DiagnosticStatus.WARN
        header = Header(stamp=self.get_clock().now().to_msg())
        msg = diagnostics(header, f"{self.get_name()}: tracking", self._device, level, "tracking", values)
        self._pubs["diagnostics"].publish(msg)


def _plain(param: Parameter) -> object:
    """A parameter's value as :class:`NodeParams` holds it (string arrays as tuples)."""
    return tuple(param.value) if param.type_ == Parameter.Type.STRING_ARRAY else param.value


def _vision_msgs():
    """The ``detections`` module, or ``None`` where ``vision_msgs`` is not installed."""
    try:
        from . import detections
    except ImportError:
        return None
    return detections


def _descriptor(spec) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.int_range is not None:
        lo, hi, step = spec.int_range
        desc.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=step)]
    if spec.float_range is not None:
        lo, hi, step = spec.float_range
        desc.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=step)]
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    return desc


def _prompt_request(req: AddPrompt.Request) -> PromptRequest:
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
    )


def _build_tracker(
    params: NodeParams, device: torch.device, precision: str, graphs: bool
) -> tuple[SAM2Tracker, float, float]:
    """The configured tracker, warmed up: ``(tracker, seconds to load, seconds of warm-up)``."""
    start = time.monotonic()
    size = params.image_size or None
    model = build_sam2(params.model_config, params.checkpoint or None, device=device, image_size=size)
    tracker = SAM2Tracker(
        model,
        history_frames=params.history_frames,
        max_objects=params.max_objects,
        max_conditioning_frames=params.max_conditioning_frames,
        fill_hole_area=params.fill_hole_area,
        non_overlap_masks=params.non_overlap_masks,
        precision=precision,
        compile=params.compile,
        cuda_graphs=graphs,
    )
    loaded = time.monotonic() - start
    return tracker, loaded, tracker.warmup()  # compilation and lazy initialisation, never on a live frame


def main(args: list[str] | None = None) -> None:
    """Run the node; it configures and activates itself unless ``autostart:=false``."""
    rclpy.init(args=args)
    node = TrackerNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    if node.get_parameter("autostart").value:
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        else:
            node.get_logger().error(
                "staying unconfigured: fix the parameters and restart, or configure through ~/change_state"
            )
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C under `ros2 launch` brings a second SIGINT (the terminal's and launch's):
        # it must not interrupt the shutdown below
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        node.close()  # join the inference thread before the process exits
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
