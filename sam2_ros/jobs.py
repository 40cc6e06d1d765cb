"""The typed jobs, answers and counters passed between the node and its inference worker
(no ROS import): a frame waiting for the tracker (with its depth when depth is on), a prompt
and its outcome, the buffered frames' stamps, and the counters the node reports in
diagnostics."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sam2_model import ObjectResult
from sam2_model.geometry import Intrinsics

__all__ = [
    "MAX_OBJECT_ID",
    "BufferedStamp",
    "DepthFrame",
    "FrameJob",
    "OutputStats",
    "PromptOutcome",
    "PromptRequest",
    "RoundStats",
    "WorkerStats",
    "events_per_second",
    "prompt_message",
    "ros_field_names",
]

MAX_OBJECT_ID = 255


@dataclass
class FrameJob:
    """A received frame waiting for the tracker; its pixels are decoded only if the tracker
    takes it (a frame replaced while it waits costs nothing)."""

    decode: Callable[[], np.ndarray]  # -> [H, W, 3] RGB uint8; called once, on the inference thread
    stamp_ns: int  # header stamp in nanoseconds
    header: object  # the message header, handed back with the result
    received: float  # time.monotonic() when the callback got it
    image: np.ndarray | None = None  # [H, W, 3] RGB uint8, set when the worker decoded it
    depth: DepthFrame | None = None  # the depth and camera_info paired with it (depth on)
    camera: str = ""  # the camera it came from ("": the node's one unnamed camera)

    @classmethod
    def of_array(cls, image: np.ndarray, stamp_ns: int, header: object, received: float, camera: str = "") -> FrameJob:
        """A job for a frame that is already an RGB array."""
        return cls(lambda: image, stamp_ns, header, received, camera=camera)


@dataclass(frozen=True)
class DepthFrame:
    """The depth image and camera model synchronised with a colour frame; the depth is
    decoded when the frame's results are published."""

    decode: Callable[[], np.ndarray]  # -> [h, w] float32 metres at the depth image's own size
    k: tuple[float, ...]  # camera_info.k of the colour camera (row-major 3x3)
    calibrated_hw: tuple[int, int]  # camera_info's height and width (0: unknown)

    def intrinsics(self, image_hw: tuple[int, int]) -> Intrinsics:
        """The colour camera's intrinsics for an image of ``image_hw``."""
        h, w = self.calibrated_hw
        return Intrinsics.from_camera_info(self.k, w, h, image_hw)


@dataclass
class PromptRequest:
    """A prompt for the tracker (already decoded from the service request)."""

    obj_id: int | None  # None: the smallest free id (clicks on ~/click)
    stamp_ns: int  # 0: the latest processed frame
    label: str = ""
    points: np.ndarray | None = None  # [N, 2] pixels
    labels: np.ndarray | None = None  # [N]
    box: list[float] | None = None  # inclusive pixel box
    mask: np.ndarray | None = None  # [H, W] bool
    clear_previous: bool = False
    camera: str = ""  # the camera whose frame it names ("": the only camera)


@dataclass(frozen=True)
class BufferedStamp:
    """A processed frame that prompts can still name by its stamp."""

    frame_index: int  # the tracker's index of the frame
    header: object  # its message header
    image_hw: tuple[int, int]  # its size (H, W)


@dataclass
class PromptOutcome:
    """The answer to a prompt, removal or reset."""

    success: bool
    message: str
    result: ObjectResult | None = None  # the object on the prompted frame
    label: str = ""
    header: object = None  # the prompted frame's header


@dataclass
class WorkerStats:
    """Counters for diagnostics."""

    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  # replaced while waiting, never tracked
    frames_decoded: int = 0  # pixels decoded: only frames taken by the tracker
    frames_failed: int = 0
    last_latency_ms: float = 0.0  # received -> results published
    processed_times: deque = field(default_factory=lambda: deque(maxlen=60))  # monotonic, when published
    tracking_seconds: deque = field(default_factory=lambda: deque(maxlen=60))  # its round (decoding + tracking)
    publishing_seconds: deque = field(default_factory=lambda: deque(maxlen=60))  # building + publishing, per frame

    @property
    def rate_hz(self) -> float:
        """Frames published per second over the last 60: the output rate (at most the input's;
        pauses in the input count)."""
        return events_per_second(self.processed_times)

    @property
    def tracking_ms(self) -> float:
        """Mean time of the inference thread's rounds that took a frame of this camera
        (decoding and tracking every frame of the round), last 60."""
        return _mean_ms(self.tracking_seconds)

    @property
    def publishing_ms(self) -> float:
        """Mean time the publishing thread spends on one frame's messages, last 60."""
        return _mean_ms(self.publishing_seconds)

    @property
    def processing_ms(self) -> float:
        """The slower of the two stages, which run side by side: ``1000 / processing_ms`` is
        the rate the node could sustain."""
        return max(self.tracking_ms, self.publishing_ms)


@dataclass
class RoundStats:
    """The inference thread's rounds: each takes the newest waiting frame of every camera
    that has one and encodes them as one batch."""

    rounds: int = 0
    round_times: deque = field(default_factory=lambda: deque(maxlen=60))  # monotonic, when each ended
    batch_sizes: deque = field(default_factory=lambda: deque(maxlen=60))  # frames tracked in each

    def record(self, frames: int, now: float) -> None:
        self.rounds += 1
        self.round_times.append(now)
        self.batch_sizes.append(frames)

    @property
    def rate_hz(self) -> float:
        """Rounds per second over the last 60."""
        return events_per_second(self.round_times)

    @property
    def mean_batch(self) -> float:
        """Frames per round (the image encoder's batch size), mean of the last 60."""
        return sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else 0.0


def events_per_second(times: deque) -> float:
    """The rate of the events at ``times`` (monotonic seconds, oldest first); 0 for fewer than two."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0


def _mean_ms(seconds: deque) -> float:
    return 1e3 * sum(seconds) / len(seconds) if seconds else 0.0


@dataclass
class OutputStats:
    """Images built for the optional outputs: only for frames published while someone
    subscribes to them."""

    label_images: int = 0  # ~/mask
    overlays: int = 0  # ~/overlay


def prompt_message(obj_id: int, existed: bool, frame: int, latest: int, area: int) -> str:
    """What a prompt did, e.g. ``object 3 started on frame 4, tracked forward to frame 9 (area
    120 px on frame 4)``."""
    verb = "refined" if existed else "started"
    forward = "" if frame == latest else f", {'re-' if existed else ''}tracked forward to frame {latest}"
    return f"object {obj_id} {verb} on frame {frame}{forward} (area {area} px on frame {frame})"


def ros_field_names(message: str) -> str:
    """The tracker's field names -> the service request's."""
    for ours, theirs in (("labels:", "point_labels:"), ("obj_id:", "object_id:"), ("frame_index:", "stamp:")):
        if message.startswith(ours):
            return theirs + message[len(ours) :]
    return message
