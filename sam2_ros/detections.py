"""``vision_msgs`` in and out: the tracked objects as ``Detection2DArray`` for consumers that
speak vision_msgs (planners, Foxglove, other trackers), and a detector's ``Detection2DArray``
as a :class:`DetectionBatch`. Imports ``vision_msgs``: the node loads this module only where
that package is installed."""

from __future__ import annotations

from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    ObjectHypothesisWithPose,
)

from .conversions import stamp_to_ns
from .detector_input import Detection, DetectionBatch
from .msg import TrackedObject

__all__ = ["Detection2DArray", "Detection3DArray", "detection_2d", "detection_batch", "detections_2d", "detections_3d"]


def _hypothesis(obj: TrackedObject) -> ObjectHypothesisWithPose:
    """Class = the object's label (its id when unlabelled), score = its visibility probability."""
    result = ObjectHypothesisWithPose()
    result.hypothesis.class_id = obj.label or str(obj.id)
    result.hypothesis.score = float(obj.object_score)
    return result


def detection_2d(obj: TrackedObject, header: Header) -> Detection2D:
    """One visible object -> ``Detection2D``: its tight box in vision_msgs' continuous pixel
    convention (the centre of a ``width``-pixel box at ``x_offset`` is ``x_offset + width/2``),
    class = its label (its id when unlabelled), score = its visibility probability."""
    b = obj.bbox
    box = BoundingBox2D(size_x=float(b.width), size_y=float(b.height))
    box.center.position.x = b.x_offset + b.width / 2.0
    box.center.position.y = b.y_offset + b.height / 2.0
    return Detection2D(header=header, results=[_hypothesis(obj)], bbox=box, id=str(obj.id))


def detections_2d(header: Header, objects: list[TrackedObject]) -> Detection2DArray:
    """The objects visible on a frame (not occluded, mask not empty) -> ``Detection2DArray``
    with the frame's header."""
    visible = [o for o in objects if not o.occluded and o.area > 0]
    return Detection2DArray(header=header, detections=[detection_2d(o, header) for o in visible])


def detections_3d(header: Header, objects: list[TrackedObject]) -> Detection3DArray:
    """The visible objects with a position -> ``Detection3DArray`` in the colour camera's
    optical frame: box centre = position, box size = size, class and score as in 2D."""
    out = Detection3DArray(header=header)
    for obj in objects:
        if obj.occluded or obj.area == 0 or not obj.has_position:
            continue
        box = BoundingBox3D(size=obj.size)
        box.center.position = obj.position
        box.center.orientation.w = 1.0
        out.detections.append(Detection3D(header=header, results=[_hypothesis(obj)], bbox=box, id=str(obj.id)))
    return out


def detection_batch(msg: Detection2DArray) -> DetectionBatch:
    """A detector's message -> plain detections, stamped with the message's header stamp
    (the frame the detector saw). Each keeps its best-scoring hypothesis; the values are
    checked where they are used (:func:`~sam2_ros.detector_input.plan_detections`)."""
    detections = []
    for d in msg.detections:
        best = max(d.results, key=lambda r: r.hypothesis.score, default=None)
        b = d.bbox
        detections.append(
            Detection(
                center_x=float(b.center.position.x),
                center_y=float(b.center.position.y),
                size_x=float(b.size_x),
                size_y=float(b.size_y),
                class_id=best.hypothesis.class_id if best is not None else "",
                score=float(best.hypothesis.score) if best is not None else None,
            )
        )
    return DetectionBatch(stamp_to_ns(msg.header.stamp), tuple(detections))
