"""Textured shapes and backgrounds for the synthetic videos, rasterised with numpy (no per-pixel loops).

Shapes live in *unit coordinates*: their farthest point lies at distance 1 from the centre, so a
shape drawn with radius ``r`` pixels fits in a circle of radius ``r``. Textures are functions of the
same unit coordinates, so they turn and scale with the shape.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PATTERNS",
    "SHAPE_KINDS",
    "Raster",
    "Shape",
    "Texture",
    "band_texture",
    "hsv",
    "make_background",
    "random_shape",
    "random_texture",
    "rasterise",
]

SHAPE_KINDS = ("disc", "ellipse", "rectangle", "triangle", "polygon", "star")
PATTERNS = ("stripes", "checker", "noise", "rings", "dots")


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour ``[3]`` float32 in 0..255 from hue (wraps), saturation and value in 0..1."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _polygon_area(vertices: np.ndarray) -> float:
    x, y = vertices[:, 0], vertices[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over the pixels, looping over the (few) edges."""
    inside = np.zeros(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, np.roll(vertices, -1, axis=0)):
        if y1 == y2:  # a horizontal edge never toggles the ray test
            continue
        crosses = (v < y1) != (v < y2)
        x_cross = x1 + (v - y1) * ((x2 - x1) / (y2 - y1))
        inside ^= crosses & (u < x_cross)
    return inside


@dataclass(frozen=True, eq=False)
class Shape:
    """A shape in unit coordinates (farthest point at distance 1 from the centre)."""

    kind: str  # one of SHAPE_KINDS
    axes: tuple[float, float]  # disc/ellipse semi-axes along u and v (unused for polygons)
    vertices: np.ndarray | None  # [K, 2] polygon vertices (u, v), None for discs and ellipses
    area: float  # area in unit coordinates

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Whether each point ``(u, v)`` (any shape, unit coordinates) lies in the shape: bool, same shape."""
        if self.vertices is None:
            a, b = self.axes
            return (u / a) ** 2 + (v / b) ** 2 <= 1.0
        return _inside_polygon(u, v, self.vertices)


def _regular(n: int, radii: np.ndarray, phase: float) -> np.ndarray:
    angles = phase + 2.0 * math.pi * np.arange(n) / n
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def random_shape(rng: np.random.Generator, kind: str | None = None) -> Shape:
    """A random shape of ``kind`` (a random one of SHAPE_KINDS when None)."""
    if kind is None:
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    if kind == "disc":
        return Shape(kind, (1.0, 1.0), None, math.pi)
    if kind == "ellipse":
        b = float(rng.uniform(0.55, 0.8))
        return Shape(kind, (1.0, b), None, math.pi * b)
    if kind == "rectangle":
        half = math.atan(float(rng.uniform(0.55, 1.0)))  # aspect b/a = tan(half); a^2 + b^2 = 1
        a, b = math.cos(half), math.sin(half)
        verts = np.array([[a, b], [-a, b], [-a, -b], [a, -b]])
    elif kind == "triangle":
        angles = np.array([0.0, 2.0, 4.0]) * math.pi / 3.0 + rng.uniform(-0.35, 0.35, 3)
        verts = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    elif kind == "polygon":
        n = int(rng.integers(5, 8))
        verts = _regular(n, rng.uniform(0.8, 1.0, n), float(rng.uniform(0, 2 * math.pi)))
    elif kind == "star":
        n = int(rng.integers(4, 7))
        radii = np.tile([1.0, float(rng.uniform(0.45, 0.6))], n)
        verts = _regular(2 * n, radii, 0.0)
    else:
        raise ValueError(f"shape kind {kind!r}: expected one of {SHAPE_KINDS}")
    verts = verts / np.hypot(verts[:, 0], verts[:, 1]).max()
    return Shape(kind, (1.0, 1.0), verts, _polygon_area(verts))


@dataclass(frozen=True, eq=False)
class Texture:
    """A two-colour pattern over unit coordinates, with a linear shading."""

    pattern: str  # one of PATTERNS
    colors: np.ndarray  # [2, 3] float32 RGB 0..255: colour at pattern value 0 and at 1
    freq: float  # pattern frequency, cycles per unit length
    angle: float  # stripe direction in radians
    phase: float  # pattern offset
    waves: np.ndarray  # [4, 4] rows (fu, fv, phase, weight) of the "noise" pattern
    shading: np.ndarray  # [2] brightness gradient along u and v

    def values(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The pattern value in 0..1 at unit coordinates ``u``, ``v`` ([N] each): [N] float32."""
        f = self.freq
        if self.pattern == "stripes":
            s = np.sin(2 * math.pi * f * (u * math.cos(self.angle) + v * math.sin(self.angle)) + self.phase)
            q = np.clip(0.5 + 2.0 * s, 0.0, 1.0)
        elif self.pattern == "checker":
            q = ((np.floor(u * f + self.phase) + np.floor(v * f)) % 2).astype(np.float32)
        elif self.pattern == "rings":
            q = np.clip(0.5 + 2.0 * np.sin(2 * math.pi * f * np.hypot(u, v) + self.phase), 0.0, 1.0)
        elif self.pattern == "dots":
            du = (u * f + self.phase) % 1.0 - 0.5
            dv = (v * f) % 1.0 - 0.5
            q = (du * du + dv * dv < 0.09).astype(np.float32)
        else:  # "noise": a few random plane waves
            w = self.waves
            acc = sum(w[k, 3] * np.sin(w[k, 0] * u + w[k, 1] * v + w[k, 2]) for k in range(len(w)))
            q = np.clip(0.5 + 0.5 * acc / w[:, 3].sum() * 1.6, 0.0, 1.0)
        return q.astype(np.float32)

    def colorize(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB colours ``[N, 3]`` float32 (0..255) at unit coordinates ``u``, ``v`` ([N] each)."""
        q = self.values(u, v)[:, None]
        rgb = self.colors[0] * (1.0 - q) + self.colors[1] * q
        light = 1.0 + self.shading[0] * u + self.shading[1] * v
        return rgb * light[:, None].astype(np.float32)


def random_texture(rng: np.random.Generator, hue: float) -> Texture:
    """A random pattern in two saturated shades of ``hue`` (0..1): the main colour and a darker one."""
    sat = float(rng.uniform(0.6, 1.0))
    main = hsv(hue, sat, float(rng.uniform(0.75, 1.0)))
    dark = hsv(hue + float(rng.uniform(-0.06, 0.06)), sat * float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.3, 0.5)))
    colors = np.stack([main, dark]) if rng.random() < 0.5 else np.stack([dark, main])
    waves = np.concatenate(
        [rng.normal(0.0, 6.0, (4, 2)), rng.uniform(0, 2 * math.pi, (4, 1)), rng.uniform(0.3, 1.0, (4, 1))], axis=1
    )
    return Texture(
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        colors=colors.astype(np.float32),
        freq=float(rng.uniform(1.2, 2.5)),
        angle=float(rng.uniform(0, math.pi)),
        phase=float(rng.uniform(0, 2 * math.pi)),
        waves=waves,
        shading=rng.uniform(-0.15, 0.15, 2),
    )


@dataclass(frozen=True)
class Raster:
    """A shape rasterised on the pixel grid, in its (unclipped) bounding box."""

    y0: int  # frame row of the box's first row (may be negative or past the frame)
    x0: int  # frame column of the box's first column
    inside: np.ndarray  # [h, w] bool: pixel centres inside the shape
    u: np.ndarray  # [h, w] float32 unit coordinate u of each pixel centre
    v: np.ndarray  # [h, w] float32 unit coordinate v of each pixel centre


def rasterise(shape: Shape, center: np.ndarray, angle: float, radius: float) -> Raster:
    """Draw ``shape`` centred at ``center`` (x, y) pixels, turned by ``angle`` radians, ``radius`` pixels big."""
    cx, cy = float(center[0]), float(center[1])
    x0, y0 = math.floor(cx - radius), math.floor(cy - radius)
    x1, y1 = math.ceil(cx + radius) + 1, math.ceil(cy + radius) + 1
    dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx -= cx
    dy -= cy
    c, s = math.cos(angle) / radius, math.sin(angle) / radius
    u = c * dx + s * dy
    v = c * dy - s * dx
    return Raster(y0, x0, shape.inside(u, v), u, v)


def _resize_smooth(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Upsample ``[h, w, C]`` to ``[height, width, C]`` with smoothstep-weighted bilinear interpolation."""
    gh, gw = grid.shape[:2]
    ys = np.linspace(0.0, gh - 1.0, height)
    xs = np.linspace(0.0, gw - 1.0, width)
    iy = np.clip(np.floor(ys).astype(int), 0, gh - 2)
    ix = np.clip(np.floor(xs).astype(int), 0, gw - 2)
    fy, fx = ys - iy, xs - ix
    fy = (fy * fy * (3 - 2 * fy))[:, None, None]
    fx = (fx * fx * (3 - 2 * fx))[None, :, None]
    top = grid[iy][:, ix] * (1 - fx) + grid[iy][:, ix + 1] * fx
    bottom = grid[iy + 1][:, ix] * (1 - fx) + grid[iy + 1][:, ix + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth random field ``[height, width, channels]`` in 0..1 with about ``cells`` bumps across."""
    gh = max(2, round(cells * height / max(height, width)) + 1)
    gw = max(2, round(cells * width / max(height, width)) + 1)
    return _resize_smooth(rng.random((gh, gw, channels)), height, width)


def make_background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A random muted background ``[H, W, 3]`` float32 (0..255): smooth noise, a gradient, blobs, grain.

    Also returns its palette ``[3, 3]`` (RGB rows) for things that should look like the background.
    """
    base_hue = float(rng.random())
    palette = np.stack(
        [
            hsv(base_hue + float(rng.normal(0, 0.12)), float(rng.uniform(0.05, 0.35)), float(rng.uniform(0.25, 0.85)))
            for _ in range(3)
        ]
    )
    mix = smooth_noise(rng, height, width, int(rng.integers(2, 7)), 2)
    a, b = mix[..., :1], mix[..., 1:] * 0.7
    image = (palette[0] * (1 - a) + palette[1] * a) * (1 - b) + palette[2] * b
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = float(rng.uniform(0, 2 * math.pi))
    ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(height, width)
    image *= (1.0 + float(rng.uniform(0.1, 0.4)) * (ramp - ramp.mean()))[..., None]
    for _ in range(int(rng.integers(2, 7))):  # soft blobs of other muted colours
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = float(rng.uniform(0.05, 0.2)) * min(height, width)
        alpha = float(rng.uniform(0.3, 0.7)) * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma * sigma))
        color = hsv(float(rng.random()), float(rng.uniform(0.05, 0.4)), float(rng.uniform(0.2, 0.9)))
        image = image * (1 - alpha[..., None]) + color * alpha[..., None]
    grain = smooth_noise(rng, height, width, max(4, max(height, width) // 6), 1) - 0.5
    image += grain * float(rng.uniform(10.0, 30.0))
    return np.clip(image, 0, 255).astype(np.float32), palette


def band_texture(rng: np.random.Generator, height: int, width: int, axis: int, palette: np.ndarray) -> np.ndarray:
    """The occluder's texture ``[H, W, 3]`` float32: background colours in grain running along the band.

    ``axis`` 0: a vertical band (across x), 1: a horizontal band (across y).
    """
    field = smooth_noise(rng, height, width, int(rng.integers(2, 5)), 1)
    across = np.arange(width if axis == 0 else height, dtype=np.float32)
    stripes = 0.5 + 0.5 * np.sin(across * float(rng.uniform(0.3, 0.8)) + float(rng.uniform(0, 6.3)))
    stripes = stripes[None, :, None] if axis == 0 else stripes[:, None, None]
    i, j = (int(k) for k in rng.choice(3, 2, replace=False))
    image = palette[i] * (1 - field) + palette[j] * field
    return np.clip(image * (0.85 + 0.15 * stripes), 0, 255).astype(np.float32)
