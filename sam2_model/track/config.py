"""What one ``sam2-track`` run does: its input, prompts, model, outputs and evaluation."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..tracker import TrackerOptions

__all__ = ["DEMO_MODEL", "TrackConfig", "TrackError", "default_checkpoint"]

DEMO_MODEL = "sam2_ros_demo"  # the default model: the committed demo model


class TrackError(ValueError):
    """Bad input for a run; the message names the offending argument, file or field."""


@dataclass(frozen=True)
class TrackConfig:
    """One run of the offline tracker (``sam2-track``)."""

    input: str  # a video file, a folder of images, or a ROS 2 bag (folder, .mcap or .db3)
    out: str  # output folder: PNG masks, tracks.csv, overlay.mp4, eval.csv
    topic: str | None = None  # the bag's image topic (sensor_msgs/Image or CompressedImage)
    depth_topic: str | None = None  # bags: depth aligned to the images (16UC1 mm, 32FC1 m): 3D positions
    camera_info_topic: str | None = None  # bags: the colour camera's CameraInfo (with depth_topic)
    sync_slop: float = 0.05  # seconds: the largest stamp difference of an image and its depth/camera_info
    prompts: str | None = None  # YAML/JSON prompts file
    first_masks: str | None = None  # DAVIS palette PNG of the first processed frame (pixel = object id)
    masks_dir: str | None = None  # DAVIS annotations folder: each object prompted where it first appears
    model: str = DEMO_MODEL  # registered model configuration name
    checkpoint: str | None = None  # checkpoint file; None: the demo model's (only for the demo model)
    image_size: int | None = None  # model input size override (multiple of 32); None: the model's
    tracker: TrackerOptions = field(default_factory=lambda: TrackerOptions(device="auto"))  # tracker options
    start: int = 0  # first input frame processed
    stride: int = 1  # process every stride-th frame from start
    max_frames: int | None = None  # most frames processed; None: to the end
    video: bool = True  # write overlay.mp4
    fps: float | None = None  # overlay.mp4 frame rate; None: the input's (15 when it has none)
    out_bag: str | None = None  # output bag (bag input only): the input topic, ~/objects and ~/mask
    out_bag_storage: str | None = None  # "mcap" or "sqlite3"; None: the input bag's
    node_name: str = "sam2_tracker"  # namespace of the output bag's topics (/NODE/objects, /NODE/mask)
    eval_dir: str | None = None  # ground-truth folder of DAVIS palette PNGs named after the frames
    eval_skip_last: bool = False  # also leave out the last frame (davis2017-evaluation, vos-benchmark)
    overwrite: bool = False  # allow an output folder that holds an earlier run's results
    queue_frames: int = 8  # decoded frames waiting for the tracker (and results waiting to be written)
    progress: bool = True  # show a progress bar on stderr

    def __post_init__(self) -> None:
        if self.start < 0:
            raise TrackError(f"start: must be >= 0, got {self.start}")
        if self.stride < 1:
            raise TrackError(f"stride: must be >= 1, got {self.stride}")
        if self.max_frames is not None and self.max_frames < 1:
            raise TrackError(f"max_frames: must be >= 1, got {self.max_frames}")
        if self.fps is not None and not self.fps > 0:
            raise TrackError(f"fps: must be > 0, got {self.fps}")
        if self.queue_frames < 1:
            raise TrackError(f"queue_frames: must be >= 1, got {self.queue_frames}")
        if self.first_masks is not None and self.masks_dir is not None:
            raise TrackError("first_masks: give --first-masks or --masks-dir, not both")
        if (self.depth_topic is None) != (self.camera_info_topic is None):
            raise TrackError("depth_topic: give --depth-topic and --camera-info-topic together")
        if not self.sync_slop >= 0:
            raise TrackError(f"sync_slop: must be >= 0 seconds, got {self.sync_slop}")
        if self.out_bag_storage not in (None, "mcap", "sqlite3"):
            raise TrackError(f"out_bag_storage: must be 'mcap' or 'sqlite3', got {self.out_bag_storage!r}")
        if not self.node_name or "/" in self.node_name.strip("/"):
            raise TrackError(f"node_name: expected a plain node name, got {self.node_name!r}")


def default_checkpoint() -> Path:
    """The demo model's checkpoint: in the ROS install or a pip install (share/sam2_ros/models),
    or the source tree."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        path = Path(prefix) / "share" / "sam2_ros" / "models" / "sam2_ros_demo.pt"
        if path.is_file():
            return path
    return Path(__file__).resolve().parents[2] / "models" / "sam2_ros_demo.pt"
