"""Frames from a video file, an image folder or a synthetic video (no ROS import)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["IMAGE_SUFFIXES", "open_frames"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff")


def _folder(path: Path) -> Iterator[np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"source: no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    for f in files:
        yield np.asarray(Image.open(f).convert("RGB"))


def _video(path: Path) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"source: cannot open video file {path}")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _synthetic(spec: str) -> Iterator[np.ndarray]:
    from sam2_model.data.synthetic import SyntheticConfig, generate_video

    parts = spec.split(":")[1:]
    seed = int(parts[0]) if parts and parts[0] else 1
    frames = int(parts[1]) if len(parts) > 1 else 24
    yield from generate_video(seed, SyntheticConfig(num_frames=frames)).frames


def open_frames(source: str) -> Iterator[np.ndarray]:
    """RGB ``[H, W, 3]`` uint8 frames of ``source``: a folder of images (sorted by name), a
    video file (mp4, avi, ...), or ``synthetic:SEED[:FRAMES]``.

    Raises:
        ValueError: starting with ``source:`` when it cannot be read.
    """
    if source.startswith("synthetic:"):
        return _synthetic(source)
    path = Path(source).expanduser()
    if path.is_dir():
        return _folder(path)
    if path.is_file():
        return _video(path)
    raise ValueError(f"source: {source!r} is not a folder, a video file or synthetic:SEED[:FRAMES]")
