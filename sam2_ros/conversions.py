"""Pure conversions between ROS messages and the tracker's inputs and results."""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from sam2_model import ObjectResult
from sam2_model.geometry import ObjectGeometry

from .image_codec import crop_mask, decode_image, decode_mask, roi_from_bbox, uncrop_mask
from .msg import TrackedObject, TrackedObjectArray

__all__ = [
    "array_to_image",
    "image_to_rgb",
    "mask_from_msg",
    "stamp_to_ns",
    "tracked_object",
    "tracked_object_array",
]


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_to_rgb(msg: Image) -> np.ndarray:
    """A ``sensor_msgs/Image`` (any of ``image_codec.ENCODINGS``) -> RGB ``[H, W, 3]`` uint8."""
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))


def mask_from_msg(msg: Image, image_hw: tuple[int, int]) -> np.ndarray | None:
    """A mono8 mask of the frame's size -> ``[H, W]`` bool; an empty image -> ``None``."""
    if msg.width == 0 and msg.height == 0 and len(msg.data) == 0:
        return None
    return decode_mask(msg.encoding, msg.height, msg.width, msg.step, msg.data, image_hw)


def object_mask(obj: TrackedObject, image_hw: tuple[int, int]) -> np.ndarray:
    """A published object's mask at the frame's size ``[H, W]`` bool (from its cropped mask)."""
    if not obj.area:
        return np.zeros(image_hw, dtype=bool)
    m, b = obj.mask, obj.bbox
    crop = decode_mask(m.encoding, m.height, m.width, m.step, m.data, (m.height, m.width))
    return uncrop_mask(crop, (b.x_offset, b.y_offset, b.width, b.height), image_hw)


def array_to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """``[H, W]`` (mono8) or ``[H, W, 3]`` (rgb8) uint8 -> ``sensor_msgs/Image`` with ``header``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    msg = Image(header=header, encoding=encoding, is_bigendian=0)
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.step = int(array.strides[0]) if array.size else 0
    msg.data = array.tobytes()
    return msg


def tracked_object(
    result: ObjectResult, label: str, header: Header, geometry: ObjectGeometry | None = None
) -> TrackedObject:
    """One object's result -> ``TrackedObject`` (mask cropped to its box, 255 inside), with
    its position and size when ``geometry`` has a position."""
    x, y, w, h = roi_from_bbox(result.bbox)
    obj = TrackedObject(
        id=int(result.obj_id),
        label=label,
        occluded=bool(result.occluded),
        object_score=float(1.0 / (1.0 + math.exp(-max(min(result.object_score, 60.0), -60.0)))),
        iou_score=float(result.iou),
        bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False),
        area=int(result.area),
        mask=array_to_image(crop_mask(result.mask, result.bbox), "mono8", header),
    )
    if geometry is not None and geometry.position is not None:
        obj.position = Point(x=geometry.position[0], y=geometry.position[1], z=geometry.position[2])
        obj.size = Vector3(x=geometry.size[0], y=geometry.size[1], z=geometry.size[2])
        obj.has_position = True
    return obj


def tracked_object_array(
    header: Header, frame_index: int, latency_ms: float, objects: list[TrackedObject]
) -> TrackedObjectArray:
    return TrackedObjectArray(
        header=header, frame_index=int(frame_index), latency_ms=float(latency_ms), objects=objects
    )
