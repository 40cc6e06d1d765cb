"""A detector's boxes as prompts (no ROS import): which detections start new objects, which
re-acquire lost ones, and which are ignored, and why.

The node converts each ``vision_msgs/Detection2DArray`` into a :class:`DetectionBatch`; the
tracker's worker plans it with :func:`plan_detections` on the frame whose stamp is the
batch's (detectors answer late: the history buffer holds that frame) and applies the plan
as box prompts. :class:`Sightings` follows, frame by frame, how long each object has been
hidden and where it was last seen; :class:`PendingBatches` holds the batches of a fast
detector until the tracker has taken their frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from sam2_model import FrameResult, ObjectResult

__all__ = [
    "Detection",
    "DetectionBatch",
    "DetectionPlan",
    "DetectionReport",
    "DetectorSettings",
    "DetectorStats",
    "Ignored",
    "PendingBatches",
    "Problem",
    "Reacquire",
    "Sightings",
    "Start",
    "box_iou",
    "plan_detections",
]

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1): first and last pixel covered, inclusive


@dataclass(frozen=True)
class Detection:
    """One detector box, in vision_msgs' continuous pixel convention: a ``size_x``-wide box
    centred on ``center_x`` covers ``[center_x - size_x/2, center_x + size_x/2)``."""

    center_x: float  # bbox.center.position.x, pixels
    center_y: float  # bbox.center.position.y, pixels
    size_x: float  # bbox.size_x, pixels
    size_y: float  # bbox.size_y, pixels
    class_id: str  # the best hypothesis' class
    score: float | None  # the best hypothesis' score; None: the detection has no hypothesis

    def pixel_box(self, image_hw: tuple[int, int]) -> Box:
        """The pixels it covers as an inclusive box, cut to the image.

        Raises:
            ValueError: naming the field (``bbox.center``, ``bbox.size_x``, ...) when the box is
                not finite, negative, below one pixel, or entirely outside the image.
        """
        h, w = image_hw
        for name, value in (("bbox.center.position.x", self.center_x), ("bbox.center.position.y", self.center_y)):
            if not math.isfinite(value):
                raise ValueError(f"{name}: {value} is not a finite number")
        spans = []
        for axis, centre, size, extent in (("x", self.center_x, self.size_x, w), ("y", self.center_y, self.size_y, h)):
            if not math.isfinite(size) or size < 1.0:
                raise ValueError(f"bbox.size_{axis}: {size} is not a size of one pixel or more")
            lo, hi = centre - size / 2.0, centre + size / 2.0 - 1.0  # the first and last pixel
            if hi < 0.0 or lo > extent - 1:
                raise ValueError(
                    f"bbox: the box ({centre - size / 2:g}..{centre + size / 2:g} in {axis}) is outside the "
                    f"{w}x{h} image"
                )
            spans.append((max(lo, 0.0), min(hi, extent - 1.0)))
        (x0, x1), (y0, y1) = spans
        return (x0, y0, x1, y1)


@dataclass(frozen=True)
class DetectionBatch:
    """The detections of one frame."""

    stamp_ns: int  # the header stamp of the frame the detector saw
    detections: tuple[Detection, ...]


@dataclass(frozen=True)
class DetectorSettings:
    """The ``detection_*`` parameters."""

    min_score: float = 0.5  # detections scoring less are ignored
    classes: frozenset[str] = frozenset()  # classes that may start objects; empty: every class
    match_iou: float = 0.3  # IoU from which a detection is the same object as a tracked one
    reacquire_frames: int = 15  # hidden this many frames in a row: a matching detection re-prompts


@dataclass
class DetectorStats:
    """What became of the detections received (counters for diagnostics)."""

    received: int = 0  # detections in the batches received
    started: int = 0  # started a new object
    reacquired: int = 0  # re-prompted an object hidden for reacquire_frames or more
    tracked: int = 0  # on an object already tracked (visible on the detection's frame): nothing to do
    waiting: int = 0  # on an object hidden for fewer than reacquire_frames: SAM 2 may find it again
    filtered: int = 0  # score below min_score, or class not in classes
    invalid: int = 0  # box or score not usable (NaN, negative, outside the image, no hypothesis)
    unbuffered: int = 0  # their stamp names no buffered frame
    refused: int = 0  # the tracker refused the prompt (e.g. max_objects reached)


@dataclass(frozen=True)
class Start:
    """Start a new object with the detection's box (the smallest free id, label = class)."""

    detection: Detection
    box: Box


@dataclass(frozen=True)
class Reacquire:
    """Re-prompt a lost object with the detection's box (it keeps its id)."""

    obj_id: int
    detection: Detection
    box: Box


@dataclass(frozen=True)
class Ignored:
    """A detection that prompts nothing."""

    detection: Detection
    counter: str  # the DetectorStats field it counts in
    reason: str  # why, naming the field or parameter
    worth_logging: bool = False  # a problem to tell the user of (not routine, like a low score)


@dataclass
class DetectionPlan:
    """What one batch does, in the order to apply it."""

    reacquires: list[Reacquire] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """Something about a batch the user should know."""

    key: str  # what it is about (the node logs each key once)
    message: str  # the whole explanation, naming the field or parameter


@dataclass
class DetectionReport:
    """What one batch did."""

    stamp_ns: int  # the batch's stamp
    camera: str = ""  # the camera whose detector sent it ("": the node's one unnamed camera)
    done: list[str] = field(default_factory=list)  # objects started or re-acquired, one line each
    problems: list[Problem] = field(default_factory=list)  # detections ignored for a reason worth telling

    def problem(self, message: str, key: str | None = None) -> None:
        """Add a problem; its key defaults to the text before the first colon (the field)."""
        self.problems.append(Problem(key or message.split(":")[0], message))


@dataclass
class Sighting:
    """How an object has looked on the latest frames."""

    hidden_frames: int = 0  # processed frames in a row on which it was occluded or empty, up to the latest
    last_box: Box | None = None  # its box on the last frame where it was visible


class Sightings:
    """Each object's :class:`Sighting`, updated with every processed frame."""

    def __init__(self) -> None:
        self._by_id: dict[int, Sighting] = {}

    def observe(self, result: FrameResult) -> None:
        """Count one more frame for every object on it (objects not on it are forgotten)."""
        self._by_id = {i: self._by_id.get(i, Sighting()) for i in result.objects}
        for obj_id, r in result.objects.items():
            if _visible(r):
                self.prompted(obj_id, r)
            else:
                self._by_id[obj_id].hidden_frames += 1

    def prompted(self, obj_id: int, result: ObjectResult) -> None:
        """An object's answer to a prompt: seen there when visible."""
        s = self._by_id.setdefault(obj_id, Sighting())
        if _visible(result):
            s.hidden_frames, s.last_box = 0, tuple(float(v) for v in result.bbox)

    def forget(self, obj_id: int) -> None:
        self._by_id.pop(obj_id, None)

    def clear(self) -> None:
        self._by_id.clear()

    def get(self, obj_id: int) -> Sighting | None:
        return self._by_id.get(obj_id)

    def hidden(self) -> dict[int, Sighting]:
        """The objects hidden on the latest frame that were seen before."""
        return {i: s for i, s in self._by_id.items() if s.hidden_frames > 0 and s.last_box is not None}


def _visible(r: ObjectResult) -> bool:
    return not r.occluded and r.area > 0 and r.bbox is not None


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two inclusive pixel boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1.0
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1.0
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0)
    area_b = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0)
    return inter / (area_a + area_b - inter)


def plan_detections(
    detections: tuple[Detection, ...],
    frame: FrameResult,
    image_hw: tuple[int, int],
    labels: dict[int, str],
    sightings: Sightings,
    settings: DetectorSettings,
) -> DetectionPlan:
    """Decide what each detection of one frame does, the best-scoring first.

    Args:
        detections: the batch's detections.
        frame: the tracker's objects on the detection's frame, as they stand now.
        image_hw: that frame's size.
        labels: the tracked objects' labels by id.
        sightings: how long each object has been hidden, up to the latest frame.
        settings: the ``detection_*`` parameters.
    """
    plan = DetectionPlan()
    taken = [tuple(float(v) for v in r.bbox) for r in frame.objects.values() if _visible(r)]
    lost = {i: s for i, s in sightings.hidden().items() if i in labels}
    order = sorted(detections, key=lambda d: -(d.score if d.score is not None and math.isfinite(d.score) else -1.0))
    for det in order:
        try:
            box = _usable_box(det, image_hw, settings)
        except _IgnoredError as skip:
            plan.ignored.append(Ignored(det, skip.counter, str(skip), skip.worth_logging))
            continue
        if any(box_iou(box, other) >= settings.match_iou for other in taken):
            plan.ignored.append(Ignored(det, "tracked", "on an object already tracked"))
            continue
        match = _best_match(box, det.class_id, lost, labels, settings.match_iou)
        if match is None:
            plan.starts.append(Start(det, box))
        elif lost[match].hidden_frames >= settings.reacquire_frames:
            plan.reacquires.append(Reacquire(match, det, box))
            del lost[match]  # one detection per lost object
        else:
            n = lost[match].hidden_frames
            plan.ignored.append(
                Ignored(det, "waiting", f"on object {match}, hidden for {n} < detection_reacquire_frames frames")
            )
        taken.append(box)
    return plan


class _IgnoredError(ValueError):
    def __init__(self, counter: str, reason: str, worth_logging: bool = True) -> None:
        super().__init__(reason)
        self.counter, self.worth_logging = counter, worth_logging


def _usable_box(det: Detection, image_hw: tuple[int, int], settings: DetectorSettings) -> Box:
    """The detection's box, or :class:`_IgnoredError` saying why it prompts nothing."""
    if det.score is None:
        raise _IgnoredError("invalid", "results: empty, the detection has no class or score")
    if not math.isfinite(det.score):
        raise _IgnoredError("invalid", f"results[].hypothesis.score: {det.score} is not a finite number")
    try:
        box = det.pixel_box(image_hw)
    except ValueError as err:
        raise _IgnoredError("invalid", str(err)) from None
    if det.score < settings.min_score:
        reason = f"score {det.score:.3f} is below detection_min_score {settings.min_score}"
        raise _IgnoredError("filtered", reason, worth_logging=False)  # routine: detectors send many
    if settings.classes and det.class_id not in settings.classes:
        known = ", ".join(sorted(settings.classes))
        raise _IgnoredError("filtered", f"class {det.class_id!r} is not in detection_classes [{known}]")
    return box


def _best_match(
    box: Box, class_id: str, lost: dict[int, Sighting], labels: dict[int, str], min_iou: float
) -> int | None:
    """The lost object of the same class whose last box overlaps ``box`` most (IoU >= ``min_iou``)."""
    scored = [(box_iou(box, s.last_box), i) for i, s in lost.items() if labels[i] == class_id]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= min_iou else None


class PendingBatches:
    """Batches whose frame the tracker has not taken yet (a detector faster than the tracker),
    at most ``capacity``; released when that frame is processed, expired when a later one is."""

    def __init__(self, capacity: int = 8) -> None:
        self._batches: deque[DetectionBatch] = deque()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._batches)

    def hold(self, batch: DetectionBatch) -> list[DetectionBatch]:
        """Keep ``batch``; returns the batches pushed out (the oldest) to make room."""
        self._batches.append(batch)
        out = []
        while len(self._batches) > self.capacity:
            out.append(self._batches.popleft())
        return out

    def release(self, stamp_ns: int) -> tuple[list[DetectionBatch], list[DetectionBatch]]:
        """Frame ``stamp_ns`` was processed: ``(its batches, the batches of older stamps)``;
        older stamps will never be processed (dropped frames)."""
        ready = [b for b in self._batches if b.stamp_ns == stamp_ns]
        expired = [b for b in self._batches if b.stamp_ns < stamp_ns]
        self._batches = deque(b for b in self._batches if b.stamp_ns > stamp_ns)
        return ready, expired

    def clear(self) -> list[DetectionBatch]:
        out, self._batches = list(self._batches), deque()
        return out
