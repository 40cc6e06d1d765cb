"""Clip augmentations of SAM 2's training recipe, on uint8 frames and object-id masks:
per-frame colour jitter, a random affine per clip, horizontal flip, temporal reversal, and a
2x2 mosaic of one video (teaches the model to ignore look-alike distractors). Not in SAM 2's
recipe, off by default: camera shake (each frame shifted on its own, as a robot's camera
on a moving base)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["AugmentConfig", "Clip", "augment_clip"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and strengths of the augmentations."""

    brightness: float = 0.3  # per-frame brightness factor in [1 - b, 1 + b]
    contrast: float = 0.3  # per-frame contrast factor in [1 - c, 1 + c]
    saturation: float = 0.3  # per-frame saturation factor in [1 - s, 1 + s]
    affine_prob: float = 0.5  # chance of a random affine transform for the clip
    max_rotation: float = 15.0  # degrees
    max_scale: float = 0.2  # scale in [1 - s, 1 + s]
    max_translate: float = 0.1  # fraction of the frame size
    max_shear: float = 10.0  # degrees
    hflip_prob: float = 0.5  # chance of a horizontal flip
    reverse_prob: float = 0.5  # chance of reversing time
    mosaic_prob: float = 0.1  # chance of a 2x2 mosaic of the clip
    shake_prob: float = 0.0  # chance of camera shake: every frame shifted by its own random offset
    max_shake: float = 0.1  # largest shake, as a fraction of the frame size each way


@dataclass
class Clip:
    """A training clip: frames and object-id masks."""

    frames: np.ndarray  # [T, H, W, 3] uint8
    masks: np.ndarray  # [T, H, W] uint8 object ids (0 background)


def _jitter(frame: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    x = frame.astype(np.float32)
    x = x * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    gray = x.mean(axis=2, keepdims=True)
    x = (x - gray) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + gray
    return x.clip(0, 255).astype(np.uint8)


def _affine_coefficients(h: int, w: int, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[float, ...]:
    """Inverse affine map (output -> input pixel) for PIL, about the image centre."""
    angle = np.deg2rad(rng.uniform(-cfg.max_rotation, cfg.max_rotation))
    shear = np.deg2rad(rng.uniform(-cfg.max_shear, cfg.max_shear))
    scale = rng.uniform(1 - cfg.max_scale, 1 + cfg.max_scale)
    tx, ty = rng.uniform(-cfg.max_translate, cfg.max_translate, size=2) * (w, h)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = scale * rot @ np.array([[1.0, np.tan(shear)], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre = np.array([w / 2, h / 2])
    offset = centre - inverse @ (centre + np.array([tx, ty]))
    return (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])


def _transform(frame: np.ndarray, mask: np.ndarray, coeffs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A frame (bilinear) and its mask (nearest) under one inverse affine map; outside is 0."""
    h, w = mask.shape
    img = Image.fromarray(frame).transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    ids = Image.fromarray(mask).transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST)
    return np.asarray(img), np.asarray(ids)


def _shake(clip: Clip, rng: np.random.Generator, max_shake: float) -> None:
    """Shift every frame (and its mask) in place by its own whole-pixel offset, up to
    ``max_shake`` of the frame size each way."""
    h, w = clip.masks.shape[1:]
    for i in range(len(clip.frames)):
        dx, dy = np.round(rng.uniform(-max_shake, max_shake, size=2) * (w, h))
        clip.frames[i], clip.masks[i] = _transform(clip.frames[i], clip.masks[i], (1.0, 0.0, -dx, 0.0, 1.0, -dy))


def _mosaic(clip: Clip) -> Clip:
    """2x2 copies of the clip at half size; only the top-left copy keeps its object ids (the
    three others are look-alike distractors)."""
    t, h, w, _ = clip.frames.shape
    hh, hw = h // 2, w // 2
    frames = clip.frames.copy()
    masks = np.zeros_like(clip.masks)
    for i in range(t):
        small = np.asarray(Image.fromarray(clip.frames[i]).resize((hw, hh), Image.Resampling.BILINEAR))
        for y, x in ((0, 0), (0, hw), (hh, 0), (hh, hw)):
            frames[i, y : y + hh, x : x + hw] = small
        masks[i, :hh, :hw] = np.asarray(Image.fromarray(clip.masks[i]).resize((hw, hh), Image.Resampling.NEAREST))
    return Clip(frames, masks)


def augment_clip(clip: Clip, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> Clip:
    """A randomly augmented copy of ``clip`` (same shape)."""
    frames, masks = clip.frames.copy(), clip.masks.copy()
    if rng.random() < cfg.reverse_prob:
        frames, masks = frames[::-1].copy(), masks[::-1].copy()
    if rng.random() < cfg.hflip_prob:
        frames, masks = frames[:, :, ::-1].copy(), masks[:, :, ::-1].copy()
    out = Clip(frames, masks)
    if rng.random() < cfg.mosaic_prob:
        out = _mosaic(out)
    if rng.random() < cfg.affine_prob:
        h, w = frames.shape[1:3]
        coeffs = _affine_coefficients(h, w, rng, cfg)
        for i in range(len(frames)):
            out.frames[i], out.masks[i] = _transform(out.frames[i], out.masks[i], coeffs)
    if cfg.shake_prob > 0 and rng.random() < cfg.shake_prob:  # no draw when off: recipes replay
        _shake(out, rng, cfg.max_shake)
    out.frames = np.stack([_jitter(f, rng, cfg) for f in out.frames])
    return out
