"""Synthetic videos with exact ground truth, to train and evaluate a small video object tracker.

Each video has a few textured objects (discs, ellipses, rectangles, triangles, polygons, stars)
moving along smooth curves while turning and changing size, on a random textured background.
The videos hold the hard cases of tracking: objects cross each other (depth order per object,
which may change), leave the frame and come back, hide fully behind an occluder band for a
stretch, and share the scene with look-alike distractors (same shape and texture as a real
object, but background for the ground truth). Everything is a function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._motion import Anchor, fill_anchors, hermite_path, scale_curve
from ._render import Shape, Texture, band_texture, make_background, random_shape, random_texture, rasterise

__all__ = ["SyntheticConfig", "SyntheticVideo", "generate_video"]

_BAND = -1000  # owner-map label of the occluder band (objects are > 0, distractors in -1..-255)
_PLACEMENT_TRIES = 200  # random positions tried per object on frame 0
_PLAN_ATTEMPTS = 40  # whole-scene attempts before giving up (objects shrink as they go)


@dataclass(frozen=True)
class SyntheticConfig:
    """How the synthetic videos look and what happens in them."""

    height: int = 240  # frame height in pixels
    width: int = 320  # frame width in pixels
    num_frames: int = 24  # frames per video
    min_objects: int = 2  # fewest ground-truth objects per video
    max_objects: int = 3  # most ground-truth objects per video
    num_distractors: int = 1  # most look-alike distractors per video (0..this many, drawn per video)
    occlusion_prob: float = 0.5  # chance a video has an occluder band that fully hides an object for a stretch
    exit_prob: float = 0.3  # chance, per object, that it leaves the frame and comes back
    crossing_prob: float = 0.7  # chance a video steers one object across another
    z_change_prob: float = 0.2  # chance, per object or distractor, that its depth order changes once
    min_object_area: float = 0.015  # smallest object area on frame 0, as a fraction of the frame
    max_object_area: float = 0.04  # largest object area on frame 0, as a fraction of the frame
    max_speed: float = 8.0  # usual top speed, pixels per frame (exits and occlusions go up to 1.5x)
    max_rotation: float = 0.08  # top turning speed, radians per frame
    scale_amplitude: float = 0.15  # object size varies within exp(+-2 * this) of its frame-0 size
    hide_frames: tuple[int, int] = (3, 6)  # (fewest, most) frames the occluder hides its object fully
    waypoint_every: int = 6  # frames between random trajectory waypoints
    noise_std: float = 2.0  # per-frame Gaussian pixel noise (0..255 scale)

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"SyntheticConfig.{name}: {what}, got {getattr(self, name)!r}")

        check(self.height >= 32, "height", "must be >= 32")
        check(self.width >= 32, "width", "must be >= 32")
        check(self.num_frames >= 1, "num_frames", "must be >= 1")
        check(self.min_objects >= 1, "min_objects", "must be >= 1")
        check(self.min_objects <= self.max_objects <= 255, "max_objects", "must be in min_objects..255")
        check(0 <= self.num_distractors <= 255, "num_distractors", "must be in 0..255")
        for name in ("occlusion_prob", "exit_prob", "crossing_prob", "z_change_prob"):
            check(0.0 <= getattr(self, name) <= 1.0, name, "must be a probability in 0..1")
        check(0.0 < self.min_object_area <= 0.25, "min_object_area", "must be in (0, 0.25]")
        check(self.min_object_area <= self.max_object_area <= 0.25, "max_object_area", "must be in min..0.25")
        check(self.max_speed > 0, "max_speed", "must be > 0")
        check(self.max_rotation >= 0, "max_rotation", "must be >= 0")
        check(0.0 <= self.scale_amplitude <= 0.5, "scale_amplitude", "must be in 0..0.5")
        lo_hi = self.hide_frames
        check(len(lo_hi) == 2 and 2 <= lo_hi[0] <= lo_hi[1], "hide_frames", "must be (lo, hi) with 2 <= lo <= hi")
        check(self.waypoint_every >= 2, "waypoint_every", "must be >= 2")
        check(self.noise_std >= 0, "noise_std", "must be >= 0")


@dataclass
class SyntheticVideo:
    """A generated video and its ground truth (object ids 1..N)."""

    frames: list[np.ndarray]  # [H, W, 3] uint8 RGB per frame
    masks: list[dict[int, np.ndarray]]  # per frame: id -> [H, W] bool visible mask (empty when hidden/out of frame)
    visibility: list[dict[int, float]]  # per frame: id -> visible area / full unoccluded in-frame area (0..1)
    object_ids: list[int]  # 1..N
    in_frame: list[dict[int, float]] = field(default_factory=list)  # per frame: id -> part of its area in frame
    distractor_masks: list[np.ndarray] = field(default_factory=list)  # per frame: [H, W] bool visible distractors
    distractor_sources: list[int] = field(default_factory=list)  # per distractor: the object id it imitates
    occluder_mask: np.ndarray | None = None  # [H, W] bool occluder band (over everything), None when absent
    first_frame: int = 0  # the frame number of frames[0] (generate_video(frames=...) renders a window)

    def label_map(self, t: int) -> np.ndarray:
        """The ground truth of ``frames[t]`` as one ``[H, W]`` uint8 id map (0 background)."""
        ids = np.zeros(self.frames[t].shape[:2], dtype=np.uint8)
        for oid, mask in self.masks[t].items():
            ids[mask] = oid
        return ids


@dataclass
class _Layer:
    """One moving thing: a ground-truth object (label > 0) or a distractor (label < 0)."""

    label: int  # object id (> 0) or -k for the k-th distractor
    shape: Shape  # outline in unit coordinates
    texture: Texture  # appearance
    size: float  # radius in pixels at scale 1 (frame 0)
    scales: np.ndarray  # [T] scale factor per frame, 1 on frame 0
    p0: np.ndarray | None = None  # [2] centre (x, y) on frame 0
    centers: np.ndarray | None = None  # [T, 2] centre per frame

    @property
    def r_max(self) -> float:
        return self.size * float(self.scales.max())


@dataclass(frozen=True)
class _Band:
    """A full-length occluder band across one axis, wide enough to hide ``hidden`` completely."""

    axis: int  # 0: vertical band (its width is along x), 1: horizontal band (along y)
    center: float  # band centre line, pixels along ``axis``
    half: float  # half width in pixels
    margin: float  # half width of the zone where the hidden object's centre is fully covered
    hidden: int  # label of the object it hides


def _norm(v: np.ndarray) -> float:
    return float(np.hypot(v[0], v[1]))


def _plan_band(rng: np.random.Generator, cfg: SyntheticConfig, objects: list[_Layer]) -> _Band | None:
    target = min(objects, key=lambda o: o.r_max)
    margin = 3.0 + 0.1 * target.r_max
    half = target.r_max + margin
    for axis in rng.permutation(2):
        dim = cfg.width if axis == 0 else cfg.height
        if 2 * half <= 0.4 * dim:
            return _Band(int(axis), float(rng.uniform(0.3, 0.7)) * dim, half, margin, target.label)
    return None


def _place(rng: np.random.Generator, dims: np.ndarray, layers: list[_Layer], band: _Band | None) -> bool:
    """Frame-0 centres: fully inside, apart from each other and off the band. Drops distractors that don't fit."""
    placed: list[_Layer] = []
    order = sorted(layers, key=lambda la: (la.label < 0, -la.size))
    for layer in order:
        r = layer.size
        if np.any(dims < 2 * r + 6):
            return False
        for _ in range(_PLACEMENT_TRIES):
            p = rng.uniform(r + 2, dims - r - 2)
            if band is not None and abs(p[band.axis] - band.center) < band.half + r + 2:
                continue
            if any(_norm(p - q.p0) < r + q.size + 3 for q in placed):
                continue
            layer.p0 = p
            placed.append(layer)
            break
        else:
            if layer.label > 0:
                return False
    return True


def _hide_anchors(rng: np.random.Generator, cfg: SyntheticConfig, obj: _Layer, band: _Band) -> list[Anchor] | None:
    """Walk behind the band, stay fully covered for ``hide_frames`` frames, come out again."""
    dims = np.array([cfg.width, cfg.height], dtype=np.float64)
    a, o = band.axis, 1 - band.axis
    r, c, p0, fast = obj.r_max, band.center, obj.p0, 1.5 * cfg.max_speed
    side_in = 1.0 if p0[a] > c else -1.0
    room = {1.0: dims[a] - (c + band.half), -1.0: c - band.half}
    sides = [s for s in (-side_in, side_in) if room[s] >= r + 4]
    if not sides:
        return None
    side_out = sides[0] if len(sides) == 1 or rng.random() < 0.7 else sides[1]
    d = 0.8 * band.margin
    pa = np.empty(2)
    pa[a] = c + side_in * d
    pa[o] = np.clip(p0[o] + rng.uniform(-0.3, 0.3) * dims[o], r, dims[o] - r)
    t_a = max(2, math.ceil(_norm(pa - p0) / fast))
    pe = np.empty(2)
    pe[a] = c + side_out * (band.half + r + 2 + rng.uniform(0, max(0.0, min(30.0, room[side_out] - 2 * r - 4))))
    for length in range(int(rng.integers(cfg.hide_frames[0], cfg.hide_frames[1] + 1)), 1, -1):
        pb = pa.copy()
        pb[a] = c + side_out * d
        pb[o] = np.clip(pa[o] + rng.uniform(-0.5, 0.5) * cfg.max_speed * length, r, dims[o] - r)
        pe[o] = np.clip(pb[o] + rng.uniform(-0.2, 0.2) * dims[o], r, dims[o] - r)
        t_b = t_a + length - 1  # fully covered on frames t_a..t_b
        t_e = t_b + max(2, math.ceil(_norm(pe - pb) / fast))
        if t_e <= cfg.num_frames - 1:
            tangent = (pb - pa) / (t_b - t_a)
            return [Anchor(0, p0), Anchor(t_a, pa, tangent, hold=True), Anchor(t_b, pb, tangent), Anchor(t_e, pe)]
    return None


def _exit_anchors(rng: np.random.Generator, cfg: SyntheticConfig, obj: _Layer) -> list[Anchor] | None:
    """Leave through the nearest border, stay out for 2-4 frames, come back in near where it left."""
    dims = np.array([cfg.width, cfg.height], dtype=np.float64)
    r, p0, fast = obj.r_max, obj.p0, 1.5 * cfg.max_speed
    border = int(np.argmin([p0[0], dims[0] - p0[0], p0[1], dims[1] - p0[1]]))
    a, o, low = border // 2, 1 - border // 2, border % 2 == 0
    po1 = np.empty(2)
    po1[a] = -(r + 2) if low else dims[a] + r + 2
    po1[o] = np.clip(p0[o] + rng.uniform(-0.15, 0.15) * dims[o], 0, dims[o])
    t_o1 = max(2, math.ceil(_norm(po1 - p0) / fast))
    out_len = int(rng.integers(1, 4))
    po2 = po1.copy()
    po2[o] = np.clip(po1[o] + rng.uniform(-1, 1) * cfg.max_speed * out_len, 0, dims[o])
    depth = r + 2 + rng.uniform(0, 30)
    pin = np.empty(2)
    pin[a] = depth if low else dims[a] - depth
    pin[o] = np.clip(po2[o] + rng.uniform(-0.15, 0.15) * dims[o], r + 2, dims[o] - r - 2)
    t_o2 = t_o1 + out_len
    t_in = t_o2 + max(2, math.ceil(_norm(pin - po2) / fast))
    if t_in > cfg.num_frames - 2:
        return None
    tangent = (po2 - po1) / out_len
    return [Anchor(0, p0), Anchor(t_o1, po1, tangent, hold=True), Anchor(t_o2, po2, tangent), Anchor(t_in, pin)]


def _cross_anchors(
    rng: np.random.Generator, cfg: SyntheticConfig, obj: _Layer, target: _Layer, band: _Band | None
) -> list[Anchor] | None:
    """Meet ``target`` (already planned) at a frame where it is in view, off the band."""
    dims = np.array([cfg.width, cfg.height], dtype=np.float64)
    for t in rng.permutation(np.arange(3, cfg.num_frames - 2)):
        q = target.centers[t]
        rt = target.size * float(target.scales[t])
        if np.any(q < rt) or np.any(q > dims - rt):
            continue
        if band is not None and abs(q[band.axis] - band.center) < band.half + rt:
            continue
        if _norm(q - obj.p0) / t > 1.5 * cfg.max_speed:
            continue
        offset = rng.uniform(-0.3, 0.3, 2) * min(rt, obj.size)
        return [Anchor(0, obj.p0), Anchor(int(t), q + offset)]
    return None


def _plan(rng: np.random.Generator, cfg: SyntheticConfig, shrink: float) -> tuple[list[_Layer], _Band | None] | None:
    """Objects, distractors, band and trajectories of one scene, or None when they do not fit."""
    n_frames, dims = cfg.num_frames, np.array([cfg.width, cfg.height], dtype=np.float64)
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    hue0 = float(rng.random())
    layers: list[_Layer] = []
    for i in range(n):
        hue = hue0 + (i + float(rng.uniform(-0.25, 0.25))) / n
        shape = random_shape(rng)
        frac = cfg.min_object_area + (cfg.max_object_area - cfg.min_object_area) * float(rng.random()) * shrink
        size = math.sqrt(frac * cfg.height * cfg.width / shape.area)
        layers.append(
            _Layer(i + 1, shape, random_texture(rng, hue), size, scale_curve(rng, n_frames, cfg.scale_amplitude))
        )
    for k in range(int(rng.integers(0, cfg.num_distractors + 1))):
        src = layers[int(rng.integers(n))]
        size = src.size * float(rng.uniform(0.85, 1.15))
        layers.append(_Layer(-(k + 1), src.shape, src.texture, size, scale_curve(rng, n_frames, cfg.scale_amplitude)))
    objects = layers[:n]
    band = _plan_band(rng, cfg, objects) if rng.random() < cfg.occlusion_prob else None
    if not _place(rng, dims, layers, band):
        return None
    layers = [la for la in layers if la.p0 is not None]

    plans: dict[int, list[Anchor]] = {}
    if band is not None:
        hidden = next(o for o in objects if o.label == band.hidden)
        plan = _hide_anchors(rng, cfg, hidden, band)
        if plan is None:
            band = None
        else:
            plans[hidden.label] = plan
    for obj in objects:
        if obj.label not in plans and rng.random() < cfg.exit_prob:
            plan = _exit_anchors(rng, cfg, obj)
            if plan is not None:
                plans[obj.label] = plan
    free = [o for o in objects if o.label not in plans]
    crosser = free[int(rng.integers(len(free)))] if n >= 2 and free and rng.random() < cfg.crossing_prob else None

    def trace(layer: _Layer, anchors: list[Anchor]) -> None:
        lo = np.full(2, 0.5 * layer.size)
        anchors = fill_anchors(rng, anchors, n_frames, cfg.waypoint_every, cfg.max_speed, lo, dims - lo)
        layer.centers = hermite_path(anchors, n_frames)

    for layer in layers:
        if layer is not crosser:
            trace(layer, plans.get(layer.label, [Anchor(0, layer.p0)]))
    if crosser is not None:
        target = [o for o in objects if o is not crosser][int(rng.integers(n - 1))]
        trace(crosser, _cross_anchors(rng, cfg, crosser, target, band) or [Anchor(0, crosser.p0)])
    return layers, band


def _poses(rng: np.random.Generator, cfg: SyntheticConfig, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Turning angles ``[count, T]`` (radians) and depths ``[count, T]`` (larger = nearer) of the layers."""
    t = np.arange(cfg.num_frames, dtype=np.float64)
    angles, depths = [], []
    for k in range(count):
        wobble = float(rng.uniform(0, 0.3)) * np.sin(float(rng.uniform(0.1, 0.4)) * t + float(rng.uniform(0, 6.3)))
        turn = float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)) * t
        angles.append(float(rng.uniform(0, 2 * math.pi)) + turn + wobble)
        depth = np.full(cfg.num_frames, float(k))
        if cfg.num_frames > 1 and rng.random() < cfg.z_change_prob:
            depth[int(rng.integers(1, cfg.num_frames)) :] = float(rng.uniform(-0.5, count - 0.5))
        depths.append(depth)
    return np.stack(angles), np.stack(depths)[rng.permutation(count)]  # random initial depth order


def _occluder(band: _Band, height: int, width: int) -> np.ndarray:
    """The band's pixels ``[H, W]`` bool."""
    along = np.arange(width if band.axis == 0 else height, dtype=np.float64)
    covered = np.abs(along - band.center) <= band.half
    return np.broadcast_to(covered[None, :] if band.axis == 0 else covered[:, None], (height, width)).copy()


def _draw(image: np.ndarray, owner: np.ndarray, layer: _Layer, t: int, angle: float) -> tuple[int, int]:
    """Paint ``layer`` on frame ``t`` over ``image`` [H, W, 3] and ``owner`` [H, W] (in place).

    Returns the shape's full pixel count (as if the frame were unbounded) and the count inside the frame.
    """
    height, width = owner.shape
    r = rasterise(layer.shape, layer.centers[t], angle, layer.size * float(layer.scales[t]))
    full = int(r.inside.sum())
    ys = slice(max(r.y0, 0), min(r.y0 + r.inside.shape[0], height))
    xs = slice(max(r.x0, 0), min(r.x0 + r.inside.shape[1], width))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return full, 0
    local = (slice(ys.start - r.y0, ys.stop - r.y0), slice(xs.start - r.x0, xs.stop - r.x0))
    hit = r.inside[local]
    image[ys, xs][hit] = layer.texture.colorize(r.u[local][hit], r.v[local][hit])
    owner[ys, xs][hit] = layer.label
    return full, int(hit.sum())


def generate_video(
    seed: int, config: SyntheticConfig = SyntheticConfig(), frames: range | None = None
) -> SyntheticVideo:
    """A synthetic video and its ground truth; the same ``seed`` and ``config`` give the same video.

    Every object is fully visible, apart from the others, on frame 0, with an area of at least
    ``config.min_object_area`` of the frame.

    Args:
        frames: render only this window ``range(start, stop)`` of the frames: the video's
            per-frame lists then hold those frames, each identical to the same frame of the
            whole video (training clips need a window, and rendering is most of the cost);
            ``None``: every frame.
    """
    cfg, rng = config, np.random.default_rng(seed)
    window = range(cfg.num_frames) if frames is None else frames
    if not (isinstance(window, range) and window.step == 1 and 0 <= window.start < window.stop <= cfg.num_frames):
        raise ValueError(f"frames: expected a range(start, stop) within 0..{cfg.num_frames}, got {frames!r}")
    height, width = cfg.height, cfg.width
    background, palette = make_background(rng, height, width)
    for attempt in range(_PLAN_ATTEMPTS):
        scene = _plan(rng, cfg, shrink=max(0.0, 1.0 - attempt / 10))
        if scene is not None:
            break
    else:
        raise RuntimeError(
            f"generate_video(seed={seed}): cannot fit {cfg.max_objects} objects of area >= {cfg.min_object_area} "
            f"of a {height}x{width} frame (with distractors and an occluder); lower max_objects/min_object_area"
        )
    layers, band = scene
    angles, depths = _poses(rng, cfg, len(layers))
    occluder = None if band is None else _occluder(band, height, width)
    occluder_tex = None if band is None else band_texture(rng, height, width, band.axis, palette)
    ids = [la.label for la in layers if la.label > 0]
    sources = [
        next(o.label for o in layers if o.label > 0 and o.texture is la.texture) for la in layers if la.label < 0
    ]
    video = SyntheticVideo(
        [], [], [], ids, distractor_sources=sources, occluder_mask=occluder, first_frame=window.start
    )
    for t in range(window.stop):
        if t < window.start:  # not rendered, but its noise is drawn: later frames stay the same
            if cfg.noise_std > 0:
                rng.standard_normal((height, width, 3), dtype=np.float32)
            continue
        image = background.copy()
        owner = np.zeros((height, width), dtype=np.int16)
        full, inside = {}, {}
        for k in np.argsort(depths[:, t], kind="stable"):
            full[layers[k].label], inside[layers[k].label] = _draw(image, owner, layers[k], t, float(angles[k, t]))
        if occluder is not None:
            image[occluder] = occluder_tex[occluder]
            owner[occluder] = _BAND
        if cfg.noise_std > 0:
            image += rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(cfg.noise_std)
        video.frames.append(np.clip(image + 0.5, 0, 255).astype(np.uint8))
        video.masks.append({i: owner == i for i in ids})
        video.visibility.append({i: int(video.masks[-1][i].sum()) / max(full[i], 1) for i in ids})
        video.in_frame.append({i: inside[i] / max(full[i], 1) for i in ids})
        video.distractor_masks.append((owner < 0) & (owner != _BAND))
    return video
