"""Smooth trajectories for the synthetic videos: cubic Hermite curves through timed anchors."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Anchor", "fill_anchors", "hermite_path", "scale_curve"]


@dataclass
class Anchor:
    """A point the trajectory must pass at a given frame."""

    t: int  # frame index
    p: np.ndarray  # [2] position (x, y) in pixels
    tangent: np.ndarray | None = None  # [2] velocity in pixels per frame; None: Catmull-Rom
    hold: bool = False  # no random waypoint may be added between this anchor and the next


def hermite_path(anchors: list[Anchor], num_frames: int) -> np.ndarray:
    """Positions ``[num_frames, 2]`` on the C1 curve through ``anchors`` (sorted by frame, first at 0)."""
    times = np.array([a.t for a in anchors], dtype=np.float64)
    points = np.stack([a.p for a in anchors]).astype(np.float64)
    if len(anchors) == 1:
        return np.repeat(points, num_frames, axis=0)
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"anchors: frames must increase, got {times.tolist()}")
    tangents = np.empty_like(points)
    for k, a in enumerate(anchors):
        if a.tangent is not None:
            tangents[k] = a.tangent
            continue
        lo, hi = max(k - 1, 0), min(k + 1, len(anchors) - 1)
        tangents[k] = (points[hi] - points[lo]) / (times[hi] - times[lo])
    t = np.arange(num_frames, dtype=np.float64)
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(anchors) - 2)
    h = (times[seg + 1] - times[seg])[:, None]
    s = np.clip((t - times[seg]) / h[:, 0], 0.0, 1.0)[:, None]
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * points[seg]
        + (s3 - 2 * s2 + s) * h * tangents[seg]
        + (-2 * s3 + 3 * s2) * points[seg + 1]
        + (s3 - s2) * h * tangents[seg + 1]
    )


def fill_anchors(
    rng: np.random.Generator,
    anchors: list[Anchor],
    num_frames: int,
    every: int,
    max_speed: float,
    lo: np.ndarray,
    hi: np.ndarray,
) -> list[Anchor]:
    """Add random waypoints about every ``every`` frames: between the given anchors (unless held)
    and, after the last one, a random walk up to the last frame.

    New waypoints stay in the box ``lo``..``hi`` ([2] each, x and y) and within ``max_speed``
    pixels per frame of their neighbours (roughly).
    """
    out: list[Anchor] = []
    for a, b in itertools.pairwise(anchors):
        out.append(a)
        gap = b.t - a.t
        if a.hold or gap <= every:
            continue
        n = gap // every
        for k in range(1, n + 1):
            t = a.t + round(k * gap / (n + 1))
            if t <= out[-1].t or t >= b.t:
                continue
            lerp = a.p + (b.p - a.p) * (t - a.t) / gap
            jitter = rng.uniform(-1.0, 1.0, 2) * 0.5 * max_speed * min(t - a.t, b.t - t)
            p = np.clip(lerp + jitter, np.minimum(lo, lerp), np.maximum(hi, lerp))
            out.append(Anchor(t, p))
    out.append(anchors[-1])
    last = anchors[-1]
    if len(out) >= 2 and _norm(last.p - out[-2].p) > 1e-6:  # keep going the same way, give or take
        heading = math.atan2(last.p[1] - out[-2].p[1], last.p[0] - out[-2].p[0])
    else:
        heading = float(rng.uniform(0, 2 * math.pi))
    while last.t < num_frames - 1:
        t = min(last.t + every, num_frames - 1)
        if num_frames - 1 - t < every // 2:  # no short stub at the end
            t = num_frames - 1
        heading += float(rng.normal(0.0, 0.9))
        step = float(rng.uniform(0.5, 1.0)) * max_speed * (t - last.t)
        p = np.clip(last.p + step * np.array([math.cos(heading), math.sin(heading)]), lo, hi)
        if _norm(p - last.p) > 1e-6:  # turn away from the border it ran into
            heading = math.atan2(p[1] - last.p[1], p[0] - last.p[0])
        last = Anchor(t, p)
        out.append(last)
    return out


def _norm(v: np.ndarray) -> float:
    return float(math.hypot(float(v[0]), float(v[1])))


def scale_curve(rng: np.random.Generator, num_frames: int, amplitude: float) -> np.ndarray:
    """A smooth scale factor per frame ``[num_frames]``: exactly 1 on frame 0, within exp(+-2 amplitude)."""
    a = float(rng.uniform(0.0, amplitude))
    omega = 2 * math.pi / float(rng.uniform(0.6, 2.0) * max(num_frames, 2))
    phi = float(rng.uniform(0, 2 * math.pi))
    t = np.arange(num_frames, dtype=np.float64)
    return np.exp(a * (np.sin(omega * t + phi) - math.sin(phi)))
