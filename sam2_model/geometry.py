"""Where each tracked object is in 3D, from a depth image aligned to the colour image and the
colour camera's intrinsics (no ROS import: the node and ``sam2-track`` use it).

A mask's edge pixels often carry the depth of the background or "flying pixels" between
the two, so only the mask's interior counts: the mask eroded by ``erode_px``. Its valid
depth pixels are back-projected with the pinhole model; the object's position is their
per-axis median, its size the extent between their 5th and 95th percentiles per axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .image_bytes import check_rows, pixel_rows
from .tracker import ObjectResult

__all__ = [
    "DEPTH_ENCODINGS",
    "DepthSettings",
    "Intrinsics",
    "ObjectGeometry",
    "check_depth",
    "decode_depth",
    "fit_depth",
    "frame_geometry",
    "object_geometry",
]


# depth encodings -> (bytes per pixel, metres per unit): millimetres in uint16, metres in float32
DEPTH_ENCODINGS = {"16UC1": (2, 0.001), "32FC1": (4, 1.0)}


def check_depth(encoding: str, height: int, width: int, step: int, size: int) -> None:
    """Whether a depth image's fields can be decoded (cheap: no pixel is read).

    Raises:
        ValueError: starting with ``depth:``; an encoding other than 16UC1 (millimetres) or
            32FC1 (metres), empty images, a ``step``/``data`` size that does not match.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth: unsupported encoding {encoding!r}; supported: 16UC1 (mm), 32FC1 (m)")
    check_rows("depth", height, width, step, size, DEPTH_ENCODINGS[encoding][0])


def decode_depth(
    encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview, is_bigendian: bool
) -> np.ndarray:
    """A depth image's fields -> ``[H, W]`` float32 metres (0 where the camera has no reading,
    as the 16-bit encodings mark it; NaN stays NaN).

    Raises:
        ValueError: as :func:`check_depth`.
    """
    check_depth(encoding, height, width, step, len(data))
    nbytes, scale = DEPTH_ENCODINGS[encoding]
    kind = np.dtype(np.uint16 if nbytes == 2 else np.float32).newbyteorder(">" if is_bigendian else "<")
    rows = pixel_rows(height, width, step, data, nbytes)  # [H, W, nbytes] uint8, a view
    values = np.ascontiguousarray(rows).view(kind).reshape(height, width)  # [H, W] one value per pixel
    return np.multiply(values, np.float32(scale), dtype=np.float32)  # one pass, a new array


@dataclass(frozen=True)
class Intrinsics:
    """The pinhole intrinsics of the colour image, in pixels (``CameraInfo.k``)."""

    fx: float  # focal length along x
    fy: float  # focal length along y
    cx: float  # principal point x
    cy: float  # principal point y

    @classmethod
    def from_camera_info(cls, k: list[float], width: int, height: int, image_hw: tuple[int, int]) -> Intrinsics:
        """From ``CameraInfo.k`` (row-major 3x3) of a ``width`` x ``height`` calibration, scaled
        to an image of ``image_hw`` when that differs (a resized stream).

        Raises:
            ValueError: naming ``camera_info.k`` when the focal lengths are not positive and finite.
        """
        fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise ValueError(f"camera_info.k: fx={fx}, fy={fy}, cx={cx}, cy={cy} is not a calibrated pinhole camera")
        h, w = image_hw
        sx = w / width if width > 0 else 1.0
        sy = h / height if height > 0 else 1.0
        return cls(fx * sx, fy * sy, cx * sx, cy * sy)


@dataclass(frozen=True)
class DepthSettings:
    """The ``depth_*`` parameters."""

    erode_px: int = 2  # the mask is eroded by this many pixels: its edges do not count
    min_points: int = 20  # fewer valid depth pixels inside the mask: no position
    max_depth: float = 10.0  # metres; farther depth readings are invalid (as are 0, NaN, inf)


@dataclass(frozen=True)
class ObjectGeometry:
    """One object's place in the optical frame of the colour camera (x right, y down, z forward)."""

    position: tuple[float, float, float] | None  # metres: the median point; None: too few valid points
    size: tuple[float, float, float]  # metres: the 5th..95th percentile extent per axis (0 without position)
    points: np.ndarray  # [N, 3] float32: the back-projected interior points (all, also when too few; a view)

    @property
    def has_position(self) -> bool:
        return self.position is not None


def fit_depth(depth: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """``depth`` ``[h, w]`` at the colour image's size ``[H, W]``: nearest neighbour, so no
    depth is invented between an object and its background."""
    h, w = image_hw
    if depth.shape == (h, w):
        return depth
    return cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)


def _interior(mask: np.ndarray, erode_px: int) -> np.ndarray:
    """``mask`` ``[h, w]`` bool eroded by ``erode_px`` pixels (a square of side 2 erode_px + 1);
    pixels outside the crop count as background."""
    if erode_px <= 0:
        return mask
    kernel = np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)
    eroded = cv2.erode(mask.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return eroded.view(bool)


def object_geometry(
    mask: np.ndarray,
    bbox: tuple[int, int, int, int],
    depth: np.ndarray,
    intrinsics: Intrinsics,
    settings: DepthSettings,
) -> ObjectGeometry:
    """One object from its mask.

    Args:
        mask: ``[H, W]`` bool, the object's mask at the colour image's size.
        bbox: ``(x0, y0, x1, y1)``, the mask's tight box (inclusive).
        depth: ``[H, W]`` float32 metres, aligned to the colour image.
        intrinsics: the colour camera's.
        settings: erosion, minimum points and the farthest valid depth.
    """
    x0, y0, x1, y1 = bbox
    # the crop around the mask, padded so that erosion sees the background beyond its box
    pad = max(settings.erode_px, 0)
    h, w = mask.shape
    ya, yb, xa, xb = max(y0 - pad, 0), min(y1 + pad + 1, h), max(x0 - pad, 0), min(x1 + pad + 1, w)
    inside = _interior(np.ascontiguousarray(mask[ya:yb, xa:xb]), settings.erode_px)
    vs, us = np.nonzero(inside)  # rows, columns in the crop
    z = depth[ya:yb, xa:xb][vs, us]
    valid = np.isfinite(z) & (z > 0.0) & (z <= settings.max_depth)
    z, us, vs = z[valid], us[valid] + xa, vs[valid] + ya
    xyz = np.empty((3, len(z)), np.float32)  # one row per axis: the quantiles below run along rows
    xyz[0] = (us - intrinsics.cx) * z / intrinsics.fx
    xyz[1] = (vs - intrinsics.cy) * z / intrinsics.fy
    xyz[2] = z
    points = xyz.T  # [N, 3], a view
    if len(z) < settings.min_points:
        return ObjectGeometry(None, (0.0, 0.0, 0.0), points)
    lo, centre, hi = _quantiles(xyz, (0.05, 0.5, 0.95))
    return ObjectGeometry(tuple(float(v) for v in centre), tuple(float(v) for v in hi - lo), points)


def _quantiles(rows: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Per row of ``rows`` ``[C, N]``, the quantiles ``qs`` as ``np.percentile`` computes them
    (linear between the order statistics around ``q (N - 1)``), from one partial sort:
    ``[len(qs), C]`` float64. About twice as fast as ``np.median`` plus ``np.percentile``."""
    n = rows.shape[1]
    positions = [q * (n - 1) for q in qs]
    below = [int(np.floor(p)) for p in positions]
    kth = sorted({k for b in below for k in (b, min(b + 1, n - 1))})
    ordered = np.partition(rows, kth, axis=1)  # those columns hold the order statistics
    out = np.empty((len(qs), rows.shape[0]))
    for i, (p, b) in enumerate(zip(positions, below, strict=True)):
        a, c = ordered[:, b].astype(np.float64), ordered[:, min(b + 1, n - 1)].astype(np.float64)
        out[i] = a + (p - b) * (c - a)
    return out


def frame_geometry(
    objects: dict[int, ObjectResult], depth: np.ndarray, intrinsics: Intrinsics, settings: DepthSettings
) -> dict[int, ObjectGeometry]:
    """Every object with a non-empty mask on one frame, by id (hidden objects have none)."""
    return {
        obj_id: object_geometry(r.mask, r.bbox, depth, intrinsics, settings)
        for obj_id, r in objects.items()
        if r.bbox is not None and r.area > 0
    }
