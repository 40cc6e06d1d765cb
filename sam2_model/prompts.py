"""Validation of user prompts (clicks, boxes, masks) in image pixels.

Every problem raises a ``ValueError`` whose message starts with the offending field, so a
caller (the tracker, the ROS node) can pass it on as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Prompt", "validate_image", "validate_prompt"]


@dataclass(frozen=True)
class Prompt:
    """A validated prompt on an ``H x W`` image."""

    points: np.ndarray  # [N, 2] float32 clicks (x, y) in pixels
    labels: np.ndarray  # [N] int32: 1 on the object, 0 not on it
    box: np.ndarray | None  # [4] float32 (x0, y0, x1, y1) pixels, or None
    mask: np.ndarray | None  # [H, W] bool, or None

    @property
    def num_points(self) -> int:
        """Clicks plus box corners: what decides single vs multi-mask output."""
        return len(self.points) + (2 if self.box is not None else 0)

    @property
    def has_points(self) -> bool:
        return self.num_points > 0

    def point_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Box corners (labels 2, 3) first, then the clicks: ``[P, 2]``, ``[P]``."""
        coords, labels = [self.points], [self.labels]
        if self.box is not None:
            coords.insert(0, self.box.reshape(2, 2))
            labels.insert(0, np.array([2, 3], dtype=np.int32))
        return np.concatenate(coords).astype(np.float32), np.concatenate(labels).astype(np.int32)


def validate_image(image: object, name: str = "image") -> np.ndarray:
    """An RGB image as a C-contiguous ``[H, W, 3]`` uint8 array, or ``ValueError``."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array HxWx3 uint8, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected shape HxWx3 (RGB), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: empty image {image.shape}")
    return np.ascontiguousarray(image)


def _numeric(value: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numbers, got {value!r}") from err
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _validate_points(points: ArrayLike, hw: tuple[int, int]) -> np.ndarray:
    pts = _numeric(points, "points")
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.size == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected an array of (x, y) pairs, shape Nx2, got {pts.shape}")
    h, w = hw
    outside = (pts[:, 0] < 0) | (pts[:, 0] > w) | (pts[:, 1] < 0) | (pts[:, 1] > h)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"points: point {i} ({pts[i, 0]:g}, {pts[i, 1]:g}) is outside the {w}x{h} image")
    return pts.astype(np.float32)


def _validate_labels(labels: ArrayLike | None, n: int) -> np.ndarray:
    if labels is None:
        if n:
            raise ValueError(f"labels: {n} points need {n} labels (1 on the object, 0 not)")
        return np.zeros((0,), dtype=np.int32)
    lab = _numeric(labels, "labels").reshape(-1) if np.size(labels) else np.zeros((0,))
    if lab.size != n:
        raise ValueError(f"labels: got {lab.size} labels for {n} points")
    if not np.all((lab == 0) | (lab == 1)):
        bad = lab[(lab != 0) & (lab != 1)][0]
        raise ValueError(f"labels: must be 0 (not on the object) or 1 (on the object), got {bad:g}")
    return lab.astype(np.int32)


def _validate_box(box: ArrayLike, hw: tuple[int, int]) -> np.ndarray:
    b = _numeric(box, "box").reshape(-1)
    if b.size != 4:
        raise ValueError(f"box: expected (x0, y0, x1, y1), got {b.size} values")
    x0, y0, x1, y1 = b
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box: corners must satisfy x0 <= x1 and y0 <= y1, got ({x0:g}, {y0:g}, {x1:g}, {y1:g})")
    h, w = hw
    if x0 < 0 or y0 < 0 or x1 > w - 1 or y1 > h - 1:
        raise ValueError(
            f"box: ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is not inside the {w}x{h} image "
            f"(its corners are the first and last pixels it covers: x in 0..{w - 1}, y in 0..{h - 1})"
        )
    return b.astype(np.float32)


def _validate_mask(mask: ArrayLike, hw: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != tuple(hw):
        raise ValueError(f"mask: expected shape {hw[0]}x{hw[1]} (the image's HxW), got {m.shape}")
    if m.dtype == np.bool_:
        return m.copy()
    if not (np.issubdtype(m.dtype, np.number)):
        raise ValueError(f"mask: expected a boolean or numeric array, got dtype {m.dtype}")
    if np.issubdtype(m.dtype, np.floating) and not np.all(np.isfinite(m)):
        raise ValueError("mask: contains NaN or infinite values")
    return m != 0


def validate_prompt(
    image_hw: tuple[int, int],
    points: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    box: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Prompt:
    """Check a prompt against an ``(H, W)`` image and normalise it.

    Args:
        points: clicks ``[N, 2]`` (x, y) in pixels, ``0 <= x <= W``, ``0 <= y <= H``.
        labels: ``[N]``, 1 on the object and 0 not on it.
        box: ``(x0, y0, x1, y1)``: the first and last pixel the box covers (inclusive), so
            ``0 <= x0 <= x1 <= W - 1`` and ``0 <= y0 <= y1 <= H - 1``; a box that reaches
            past the image is an error, never clipped.
        mask: ``[H, W]``, non-zero on the object.
    Raises:
        ValueError: naming the field that is wrong; nothing given at all is an error too.
    """
    pts = _validate_points(points, image_hw) if points is not None else np.zeros((0, 2), np.float32)
    lab = _validate_labels(labels, len(pts))
    bx = _validate_box(box, image_hw) if box is not None else None
    mk = _validate_mask(mask, image_hw) if mask is not None else None
    if len(pts) == 0 and bx is None and mk is None:
        raise ValueError("prompt: give at least one of points, box or mask")
    return Prompt(points=pts, labels=lab, box=bx, mask=mk)
