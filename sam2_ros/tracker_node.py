"""The ``sam2_tracker`` lifecycle node: parameters, lifecycle and diagnostics.

Its parts: per camera the input (``camera_input``) and the outputs (``outputs``); the
prompt services and subscriptions (``prompt_services``), the diagnostics
(``node_diagnostics``) and the inference worker (``worker``), which tracks every camera;
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
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from sam2_model import CheckpointError, FrameResult, SAM2Tracker, build_sam2, resolve_device
from sam2_model.tracker.options import RUNTIME_OPTIONS

from .camera_input import CameraInput
from .detector_input import DetectionReport
from .jobs import FrameJob
from .log_once import LogOnce
from .node_diagnostics import CameraParts, ModelInfo, NodeDiagnostics
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
    ``~/add_prompt``, ``~/click`` and a detector's ``detections_topic``. With ``cameras``
    (e.g. ``[front, wrist]``), the same for each camera in its namespace (``front/image``,
    ``~/front/objects``...) on one model."""

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
        self._cameras: list[CameraParts] = []
        self._prompts: PromptServices | None = None
        self._diagnostics: NodeDiagnostics | None = None
        self._timer = None
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
            if graphs and len(params.cameras) > 1:
                graphs = False  # captured per session, their static outputs cannot be shared
                self.get_logger().warning("cuda_graphs: not used with several cameras (graphs are per session)")
            if params.compile:
                self.get_logger().info("compiling the model (torch.compile): this takes a while")
            # on the inference thread: all PyTorch work of the node stays on one thread
            tracker, loaded, warmup = self._inference.submit(_build_tracker, params, device, precision, graphs).result()
            worker = TrackerWorker(
                tracker,
                self._publish_frame,
                self._warn_once,
                self._inference,
                self._log_detections,
                params.camera_names,
            )
        except (CheckpointError, ValueError) as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._params = params
        extras = "".join(f", {name}" for name, on in (("compiled", params.compile), ("CUDA graphs", graphs)) if on)
        device_text = f"{device} ({precision}{extras})"
        if vision is None:
            self.get_logger().info("~/detections is off: the vision_msgs package is not installed")
        worker.detector_settings = params.detector_settings()
        self._worker = worker
        self._prompts = PromptServices(self, worker, lambda: self._params, vision, self._warn_once, self._service_group)
        for name in params.camera_names:
            # one mutually exclusive group per camera: the cameras' callbacks run side by side
            group = MutuallyExclusiveCallbackGroup()
            inputs = CameraInput(self, params, worker.submit_frame, self._warn_once, group, name)
            outputs = FrameOutputs(self, vision, lambda: self._params, self._warn_once, name)
            self._cameras.append(CameraParts(name, inputs, outputs))
        detector = self._prompts.detector_diagnostics if params.detections_topic else None
        self._diagnostics = NodeDiagnostics(self, ModelInfo(device_text, params.model_config, warmup), detector)
        mode = "random weights" if not params.checkpoint else params.checkpoint
        self.get_logger().info(
            f"{params.model_config} ({mode}) loaded on {device_text} at {tracker.model.image_size}px "
            f"in {loaded:.1f} s, warm-up {warmup:.1f} s"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        topics = [c.input.start() for c in self._cameras]
        self._prompts.start()
        self._worker.start()
        self._timer = self.create_timer(1.0, self._publish_diagnostics)
        names = [f"{c.name} on '{t}'" if c.name else f"'{t}'" for c, t in zip(self._cameras, topics, strict=True)]
        self.get_logger().info(f"active: tracking on {', '.join(names)}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for camera in self._cameras:
            camera.input.stop()
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
        """Stop the inference thread (it finishes its round) and release the model."""
        for camera in self._cameras:
            camera.input.stop()
        self._release()
        self._inference.shutdown(wait=False)

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        parts = [p for c in self._cameras for p in (c.input, c.outputs)]
        for part in (*parts, self._prompts, self._diagnostics):
            if part is not None:
                part.destroy()
        self._cameras, self._prompts, self._diagnostics = [], None, None

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
                    worker.update_options(**options)
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
        worker = self._worker
        camera = next((c for c in self._cameras if c.name == job.camera), None)
        if camera is not None and worker is not None:
            session = worker.camera(job.camera)
            camera.outputs.publish(job, result, {i: session.label(i) for i in result.objects})

    def _log_detections(self, report: DetectionReport) -> None:
        prompts = self._prompts
        if prompts is not None:
            prompts.log_detections(report)

    def _publish_diagnostics(self) -> None:
        worker, diagnostics = self._worker, self._diagnostics
        if worker is not None and diagnostics is not None:
            diagnostics.publish(worker, self._cameras)


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
    # compilation (the encoder for 1..N cameras' frames per round) and lazy initialisation,
    # never on a live frame
    return tracker, loaded, tracker.warmup(cameras=len(params.camera_names))


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
