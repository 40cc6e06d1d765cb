"""The bytes of a ROS-style image message (``height``, ``width``, ``step``, ``data``): the size
checks and the padded rows as an array, shared by every decoder (no ROS import)."""

from __future__ import annotations

import numpy as np

__all__ = ["check_rows", "pixel_rows"]


def check_rows(field: str, height: int, width: int, step: int, size: int, channels: int) -> None:
    """The sizes of an image message with ``channels`` bytes per pixel: ``ValueError``
    starting with ``field`` when they do not fit."""
    if height <= 0 or width <= 0:
        raise ValueError(f"{field}: empty image ({width}x{height})")
    row = width * channels
    if step < row:
        raise ValueError(f"{field}: step {step} is smaller than width*channels = {row}")
    if size != step * height:
        raise ValueError(f"{field}: data has {size} bytes, expected step*height = {step * height}")


def pixel_rows(height: int, width: int, step: int, data: bytes | bytearray | memoryview, channels: int) -> np.ndarray:
    """Checked image bytes as ``[H, W, C]`` uint8, a view of ``data`` (rows may be padded:
    ``step >= W * C``)."""
    buf = np.frombuffer(data, dtype=np.uint8).reshape(height, step)  # [H, step] bytes
    return buf[:, : width * channels].reshape(height, width, channels)  # drop the row padding
