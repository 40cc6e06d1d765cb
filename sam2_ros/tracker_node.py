"""The ``sam2_tracker`` lifecycle node: parameters, lifecycle and diagnostics.

Its parts: the camera input (``camera_input``), the prompt services and subscriptions
(``prompt_services``), the outputs (``outputs``) and the inference worker (``worker``);
the logic lives in plain-Python modules (``worker``, ``detector_input``, ``image_codec``,
``overlay``, ``conversions``).
"""

from __future__ import annotations

import dataclasses
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from sam2_model import CheckpointError, FrameResult, SAM2Tracker, build_sam2, resolve_device
from sam2_model.tracker.options import RUNTIME_OPTIONS

from .camera_input import CameraInput
from .conversions import diagnostics
from .detector_input import DetectionReport
from .jobs import FrameJob
from .log_once import LogOnce
from .outputs import FrameOutputs
from .params import PARAMS, RUNTIME_PARAMS, NodeParams
from .prompt_services import PromptServices
from .worker import TrackerWorker

NODE_NAME = "sam2_tracker"
NO_CHECKPOINT_HELP = (
    "no checkpoint configured. Download an official SAM 2.1 checkpoint (e.g. sam2.1_hiera_tiny.pt from "
    "https://github.com/facebookresearch/sam2, 'Download Checkpoints') and set checkpoint:=/path/to/file.pt "
    "(with model_config:=sam2.1_hiera_tiny matching it); for tests only, allow_random_weights:=true runs "
    "with random weights"
)


class TrackerNode(LifecycleNode):
    """Tracks prompted objects on ``image`` and publishes ``~/objects``, ``~/mask``,
    ``~/overlay``, ``~/detections`` and ``/diagnostics``; prompts come through
    ``~/add_prompt``, ``~/click`` and a detector's ``detections_topic``."""

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
        self._camera: CameraInput | None = None
        self._outputs: FrameOutputs | None = None
        self._prompts: PromptServices | None = None
        self._device = ""
        self._warmup_seconds = 0.0
        self._sync_warned = False  # a stall of the depth synchronisation was logged
        self._timer = None
        self._frame_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()
        self._warn_once = LogOnce(self.get_logger())
        # the one thread that builds, warms up and runs the model (see sam2_ros.worker)
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2_inference")

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            params = NodeParams.from_values({s.name: self._value(s) for s in PARAMS})
            params.validate()
            if not params.checkpoint and not params.allow_random_weights:
                raise ValueError(NO_CHECKPOINT_HELP)
            vision = _vision_msgs()
            if params.detections_topic and vision is None:
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
        if vision is None:
            self.get_logger().info("~/detections is off: the vision_msgs package is not installed")
        self._outputs = FrameOutputs(self, vision, lambda: self._params, self._warn_once)
        worker = TrackerWorker(tracker, self._publish_frame, self._warn_once, self._inference, self._log_detections)
        worker.detector_settings = params.detector_settings()
        self._worker = worker
        self._prompts = PromptServices(self, worker, lambda: self._params, vision, self._warn_once, self._service_group)
        self._camera = CameraInput(self, params, worker.submit_frame, self._warn_once, self._frame_group)
        mode = "random weights" if not params.checkpoint else params.checkpoint
        self.get_logger().info(
            f"{params.model_config} ({mode}) loaded on {self._device} at {tracker.model.image_size}px "
            f"in {loaded:.1f} s, warm-up {warmup:.1f} s"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        topic = self._camera.start()
        self._prompts.start()
        self._worker.start()
        self._timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"active: tracking on '{topic}'")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._camera.stop()
        self._prompts.stop()
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
        if self._camera is not None:
            self._camera.stop()
        self._release()
        self._inference.shutdown(wait=False)

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        for part in (self._camera, self._prompts, self._outputs):
            if part is not None:
                part.destroy()
        self._camera = self._prompts = self._outputs = None

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

    # ------------------------------------------------------------------ worker callbacks
    def _publish_frame(self, job: FrameJob, result: FrameResult) -> None:
        """Called in the worker's publishing thread for every processed frame, in order."""
        worker, outputs = self._worker, self._outputs
        if outputs is not None:
            labels = {i: worker.label(i) for i in result.objects} if worker is not None else {}
            outputs.publish(job, result, labels)

    def _log_detections(self, report: DetectionReport) -> None:
        prompts = self._prompts
        if prompts is not None:
            prompts.log_detections(report)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        worker, outputs = self._worker, self._outputs
        if worker is None or outputs is None:
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
            "frames_skipped": self._camera.frames_skipped,
            "frames_failed": s.frames_failed,
            "frames_decoded": s.frames_decoded,
            "label_images_built": outputs.built.label_images,
            "overlays_built": outputs.built.overlays,
            "objects": len(worker.tracker.object_ids),
            "device": self._device,
            "model": self._params.model_config,
            "warmup_s": f"{self._warmup_seconds:.1f}",
        }
        if self._params.detections_topic:
            values.update(self._prompts.detector_diagnostics())
        level = DiagnosticStatus.OK if s.frames_failed == 0 else DiagnosticStatus.WARN
        message = "tracking"
        monitor = self._camera.monitor
        if monitor is not None:  # depth on
            values.update(sets_synchronised=monitor.sets, sync_rate_hz=f"{monitor.rate_hz():.2f}")
            values["point_clouds_built"] = outputs.clouds_built
            problem = monitor.problem()
            if problem is not None:
                level, message = DiagnosticStatus.WARN, problem
                if not self._sync_warned:  # once per stall
                    self.get_logger().warning(problem)
            self._sync_warned = problem is not None
        header = Header(stamp=self.get_clock().now().to_msg())
        outputs.publish_diagnostics(
            diagnostics(header, f"{self.get_name()}: tracking", self._device, level, message, values)
        )


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
