"""Pure conversions between the raw fields of a ``sensor_msgs/Image`` and numpy arrays, and
the per-object mask products (label image, cropped masks, boxes). No ROS import."""

from __future__ import annotations

import numpy as np

__all__ = [
    "ENCODINGS",
    "box_from_roi",
    "check_image",
    "crop_mask",
    "decode_image",
    "decode_mask",
    "label_image",
    "roi_from_bbox",
    "uncrop_mask",
]

# encoding -> (channels, indices of R, G, B in a pixel)
ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
    "8UC1": (1, (0, 0, 0)),
    "8UC3": (3, (0, 1, 2)),
}


def _check_rows(field: str, height: int, width: int, step: int, size: int, channels: int) -> None:
    """The sizes of an image message: ``ValueError`` starting with ``field`` when they do not fit."""
    if height <= 0 or width <= 0:
        raise ValueError(f"{field}: empty image ({width}x{height})")
    row = width * channels
    if step < row:
        raise ValueError(f"{field}: step {step} is smaller than width*channels = {row}")
    if size != step * height:
        raise ValueError(f"{field}: data has {size} bytes, expected step*height = {step * height}")


def _rows(height: int, width: int, step: int, data: bytes | bytearray | memoryview, channels: int) -> np.ndarray:
    """Checked image bytes as ``[H, W, C]`` uint8, a view of ``data`` (rows may be padded:
    ``step >= W * C``)."""
    buf = np.frombuffer(data, dtype=np.uint8).reshape(height, step)  # [H, step] bytes
    return buf[:, : width * channels].reshape(height, width, channels)  # drop the row padding


def check_image(encoding: str, height: int, width: int, step: int, size: int) -> None:
    """Whether an image message's fields can be decoded, without touching its ``size`` bytes
    of pixels (cheap: the node checks every frame it receives, and decodes only those it tracks).

    Raises:
        ValueError: as :func:`decode_image`.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"image: unsupported encoding {encoding!r}; supported: {', '.join(sorted(ENCODINGS))}")
    _check_rows("image", height, width, step, size, ENCODINGS[encoding][0])


def decode_image(encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview) -> np.ndarray:
    """An image message's fields -> RGB ``[H, W, 3]`` uint8: a read-only view of ``data`` for
    rgb8/8UC3 without row padding, a new array otherwise.

    Raises:
        ValueError: starting with ``image:``; unsupported encodings, empty images and a
            ``step``/``data`` size that does not match.
    """
    check_image(encoding, height, width, step, len(data))
    channels, rgb = ENCODINGS[encoding]
    pixels = _rows(height, width, step, data, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if rgb == (0, 1, 2) and channels == 3 and pixels.flags.c_contiguous:
        pixels.flags.writeable = False  # the message's bytes: never written through
        return pixels
    return np.ascontiguousarray(pixels[:, :, list(rgb)])


def decode_mask(
    encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview, image_hw: tuple[int, int]
) -> np.ndarray:
    """A mask image (mono8 / 8UC1, non-zero on the object) -> ``[H, W]`` bool.

    Raises:
        ValueError: starting with ``mask:``; another encoding or another size than the frame.
    """
    if encoding not in ("mono8", "8UC1"):
        raise ValueError(f"mask: expected encoding mono8, got {encoding!r}")
    if (height, width) != tuple(image_hw):
        raise ValueError(f"mask: size {width}x{height} differs from the frame's {image_hw[1]}x{image_hw[0]}")
    _check_rows("mask", height, width, step, len(data), 1)
    return _rows(height, width, step, data, 1)[:, :, 0] != 0


def label_image(masks: dict[int, np.ndarray], image_hw: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8: each pixel the id of the object covering it (0: none). Where masks
    overlap, the higher id wins (``non_overlap_masks`` makes them disjoint)."""
    labels = np.zeros(image_hw, dtype=np.uint8)
    for obj_id in sorted(masks):
        labels[masks[obj_id]] = obj_id
    return labels


def crop_mask(mask: np.ndarray, bbox: tuple[int, int, int, int] | None) -> np.ndarray:
    """The mask inside its inclusive box as mono8 (255 inside, 0 outside); ``[0, 0]`` if empty."""
    if bbox is None:
        return np.zeros((0, 0), dtype=np.uint8)
    x0, y0, x1, y1 = bbox
    return np.where(mask[y0 : y1 + 1, x0 : x1 + 1], 255, 0).astype(np.uint8)


def uncrop_mask(crop: np.ndarray, roi: tuple[int, int, int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`crop_mask`: a crop (non-zero on the object, e.g. its mono8 255)
    at ``roi`` (x_offset, y_offset, width, height) -> the ``[H, W]`` bool mask of the frame."""
    mask = np.zeros(image_hw, dtype=bool)
    x, y, w, h = roi
    if w and h:
        mask[y : y + h, x : x + w] = crop[:h, :w] != 0
    return mask


def roi_from_bbox(bbox: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """Inclusive ``(x0, y0, x1, y1)`` -> RegionOfInterest ``(x_offset, y_offset, width, height)``;
    all zero for no box."""
    if bbox is None:
        return 0, 0, 0, 0
    x0, y0, x1, y1 = bbox
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def box_from_roi(x_offset: int, y_offset: int, width: int, height: int) -> list[float]:
    """A RegionOfInterest prompt -> the tracker's box ``[x0, y0, x1, y1]``: its first and last
    pixel, inclusive. Whether the box lies inside the frame is the tracker's check (one rule
    for ROS and Python users, see ``sam2_model.prompts``).

    Raises:
        ValueError: starting with ``box:`` when the region is empty in one direction.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"box: width and height must both be positive, got {width}x{height}")
    return [float(x_offset), float(y_offset), float(x_offset + width - 1), float(y_offset + height - 1)]
