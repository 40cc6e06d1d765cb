"""The node's parameters, declared in one place (no ROS import: the node turns these specs
into declared parameters with descriptors; tests check them against config/tracker.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sam2_model.geometry import DepthSettings

from .detector_input import DetectorSettings
from .topics import check_camera_names

__all__ = ["PARAMS", "RUNTIME_PARAMS", "NodeParams", "ParamSpec", "service_queue_depth"]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, description and constraints."""

    name: str
    default: bool | int | float | str | tuple[str, ...]  # a tuple: a string array
    description: str
    read_only: bool = True  # fixed once the node is configured
    int_range: tuple[int, int, int] | None = None  # (from, to, step)
    float_range: tuple[float, float, float] | None = None  # (from, to, step); step 0 = any
    choices: tuple[str, ...] = ()  # allowed string values (checked by the node)


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "cameras",
        (),
        "Names of the cameras tracked on one model (empty: one camera on image, outputs ~/objects...); "
        "camera front subscribes to front/image and publishes ~/front/objects...",
    ),
    ParamSpec(
        "model_config",
        "sam2.1_hiera_tiny",
        "SAM 2 configuration: sam2.1_hiera_{tiny,small,base_plus,large} or sam2_hiera_*",
    ),
    ParamSpec("checkpoint", "", "Path of the model's checkpoint (.pt, the official format)"),
    ParamSpec("allow_random_weights", False, "Run with random weights when no checkpoint is set (tests only)"),
    ParamSpec("device", "auto", "auto (CUDA when present), cpu, cuda or cuda:N"),
    ParamSpec(
        "precision",
        "auto",
        "auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16",
        choices=("auto", "fp32", "bf16", "fp16"),
    ),
    ParamSpec(
        "image_size",
        0,
        "Model input size in pixels (multiple of 32; 0: the configuration's own)",
        int_range=(0, 2048, 32),
    ),
    ParamSpec(
        "compile",
        False,
        "torch.compile the model at configure (warm-up of minutes on a GPU; faster frames after)",
    ),
    ParamSpec(
        "cuda_graphs",
        True,
        "Replay CUDA graphs of the per-frame work, captured at configure (CUDA only; ignored on the CPU)",
    ),
    ParamSpec("max_objects", 32, "Most objects tracked at once", int_range=(1, 255, 1)),
    ParamSpec("history_frames", 60, "Past frames a prompt can refer to (by stamp)", int_range=(8, 1000, 1)),
    ParamSpec("max_conditioning_frames", 16, "Prompted frames kept per object", int_range=(2, 256, 1)),
    ParamSpec(
        "fill_hole_area",
        8,
        "Fill background holes up to this many low-res pixels (0: off)",
        read_only=False,
        int_range=(0, 1024, 1),
    ),
    ParamSpec("non_overlap_masks", False, "Give each pixel to the highest-scoring object only", read_only=False),
    ParamSpec(
        "image_transport",
        "raw",
        "How images arrive: raw (sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage, "
        "JPEG or PNG, on image/compressed)",
        choices=("raw", "compressed"),
    ),
    ParamSpec(
        "qos_reliability",
        "best_effort",
        "Reliability of the image subscription: best_effort (sensor data) or reliable",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec(
        "depth",
        False,
        "Also subscribe to depth (16UC1 mm or 32FC1 m, aligned to the colour image) and camera_info, "
        "synchronised with the image: each object gets a 3D position and size",
    ),
    ParamSpec(
        "sync_slop",
        0.05,
        "Seconds the stamps of a synchronised image, depth and camera_info may differ",
        float_range=(0.0, 10.0, 0.0),
    ),
    ParamSpec("sync_queue", 10, "Messages per topic the synchroniser keeps", int_range=(1, 1000, 1)),
    ParamSpec(
        "depth_erode_px",
        2,
        "Pixels eroded from each mask before its depth is used (edges and flying pixels do not count)",
        read_only=False,
        int_range=(0, 100, 1),
    ),
    ParamSpec(
        "depth_min_points",
        20,
        "Fewest valid depth pixels inside a mask for a position",
        read_only=False,
        int_range=(1, 1000000, 1),
    ),
    ParamSpec(
        "depth_max",
        10.0,
        "Farthest valid depth in metres (0, NaN and inf are invalid too)",
        read_only=False,
        float_range=(0.01, 1000.0, 0.0),
    ),
    ParamSpec(
        "detections_topic",
        "",
        "vision_msgs/Detection2DArray topic of a detector whose boxes start objects (empty: off)",
    ),
    ParamSpec(
        "detection_min_score",
        0.5,
        "Detections scoring less are ignored",
        read_only=False,
        float_range=(0.0, 1.0, 0.0),
    ),
    ParamSpec(
        "detection_classes",
        (),
        "Classes (class_id) whose detections may start objects (empty: all)",
        read_only=False,
    ),
    ParamSpec(
        "detection_new_iou",
        0.3,
        "IoU with a tracked object's box from which a detection is that object: it starts nothing "
        "(and re-acquires the object when lost)",
        read_only=False,
        float_range=(0.0, 1.0, 0.0),
    ),
    ParamSpec(
        "detection_reacquire_frames",
        15,
        "Frames in a row an object must be hidden before a detection of its class re-prompts it",
        read_only=False,
        int_range=(1, 1000, 1),
    ),
    ParamSpec("publish_overlay", True, "Render ~/overlay when someone subscribes to it", read_only=False),
    ParamSpec(
        "prompt_timeout",
        30.0,
        "Seconds a prompt service call waits for the tracker",
        read_only=False,
        float_range=(0.1, 600.0, 0.0),
    ),
)

# Parameters that may change while the node runs.
RUNTIME_PARAMS = frozenset(p.name for p in PARAMS if not p.read_only)


@dataclass(frozen=True)
class NodeParams:
    """Typed view of the parameter values (their defaults live in :data:`PARAMS` only)."""

    cameras: tuple[str, ...]
    model_config: str
    checkpoint: str
    allow_random_weights: bool
    device: str
    precision: str
    image_size: int
    compile: bool
    cuda_graphs: bool
    max_objects: int
    history_frames: int
    max_conditioning_frames: int
    fill_hole_area: int
    non_overlap_masks: bool
    image_transport: str
    qos_reliability: str
    depth: bool
    sync_slop: float
    sync_queue: int
    depth_erode_px: int
    depth_min_points: int
    depth_max: float
    detections_topic: str
    detection_min_score: float
    detection_classes: tuple[str, ...]
    detection_new_iou: float
    detection_reacquire_frames: int
    publish_overlay: bool
    prompt_timeout: float

    @classmethod
    def from_values(cls, values: dict[str, object]) -> NodeParams:
        """Values by name; missing ones take their :data:`PARAMS` default."""
        defaults = {p.name: p.default for p in PARAMS}
        values = {f.name: values.get(f.name, defaults[f.name]) for f in fields(cls)}
        arrays = {name: tuple(values[name]) for name, default in defaults.items() if isinstance(default, tuple)}
        return cls(**{**values, **arrays})

    def depth_settings(self) -> DepthSettings:
        """The ``depth_*`` values for the 3D computation."""
        return DepthSettings(erode_px=self.depth_erode_px, min_points=self.depth_min_points, max_depth=self.depth_max)

    def detector_settings(self) -> DetectorSettings:
        """The ``detection_*`` values for the worker."""
        return DetectorSettings(
            min_score=self.detection_min_score,
            classes=frozenset(self.detection_classes),
            match_iou=self.detection_new_iou,
            reacquire_frames=self.detection_reacquire_frames,
        )

    def validate(self) -> None:
        """Check string choices and camera names; ``ValueError`` names the parameter."""
        for spec in PARAMS:
            value = getattr(self, spec.name)
            if spec.choices and value not in spec.choices:
                raise ValueError(f"parameter {spec.name}: {value!r} is not one of {', '.join(spec.choices)}")
        check_camera_names(self.cameras)
        if len(self.cameras) > 1 and self.detections_topic.startswith("/"):
            raise ValueError(
                f"parameter detections_topic: {self.detections_topic!r} is absolute, but each of the "
                f"{len(self.cameras)} cameras has its own detector on <camera>/<detections_topic>: give a "
                "relative name (e.g. detections), or remap each camera's topic"
            )

    @property
    def camera_names(self) -> tuple[str, ...]:
        """The cameras' names; ``("",)``: the one unnamed camera of a node without ``cameras``."""
        return self.cameras or ("",)


def service_queue_depth(max_objects: int) -> int:
    """Requests each prompt service holds while the tracker is busy: twice ``max_objects``
    (at least 10, ROS 2's default). Calls past that, sent before the node takes them, are
    dropped by the middleware and their clients time out."""
    return max(10, 2 * max_objects)
