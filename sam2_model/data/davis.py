"""Reading and writing video object segmentation datasets in the DAVIS layout.

::

    root/JPEGImages/<video>/00000.jpg   (or .jpeg / .png)
    root/Annotations/<video>/00000.png  (palette "P" PNG: index = object id; or grayscale "L")

Every problem raises :class:`DatasetError`, whose message names the offending file or folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .synthetic import SyntheticVideo

__all__ = ["FRAME_SUFFIXES", "DatasetError", "DavisDataset", "VideoSample", "davis_palette", "write_davis"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")  # accepted frame files (any letter case)
_MASK_MODES = ("P", "L", "1")  # accepted annotation PNG modes


class DatasetError(ValueError):
    """A dataset on disk lacks a file or holds one that cannot be used; the message names it."""


@dataclass
class VideoSample:
    """One video of a dataset, loaded."""

    name: str  # video folder name
    frames: list[np.ndarray]  # [H, W, 3] uint8 RGB, in file-name order
    masks: list[np.ndarray]  # [H, W] uint8 object-id maps (0 background), one per frame
    frame_names: list[str]  # file names without suffix, e.g. "00000", in order

    @property
    def object_ids(self) -> list[int]:
        """The object ids present in any mask, sorted."""
        present = np.zeros(256, dtype=bool)
        for mask in self.masks:
            present[np.unique(mask)] = True
        return [int(i) for i in np.flatnonzero(present) if i != 0]


def _read(path: Path, what: str) -> Image.Image:
    """Open and fully decode an image, or raise DatasetError naming ``path``."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot read {what} {path}: {err}") from err


class DavisDataset:
    """Videos in the DAVIS layout under ``root`` (all sub-folders of ``JPEGImages``, or ``videos``).

    The constructor checks the layout: ``JPEGImages/`` and ``Annotations/`` exist and each video has
    frames. Files are read by :meth:`load`.
    """

    def __init__(self, root: str | Path, videos: list[str] | None = None) -> None:
        self.root = Path(root)
        self.image_root = self.root / "JPEGImages"
        self.mask_root = self.root / "Annotations"
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} does not exist or is not a folder")
        for folder in (self.image_root, self.mask_root):
            if not folder.is_dir():
                raise DatasetError(f"missing folder {folder} (expected the DAVIS layout under {self.root})")
        if videos is None:
            names = sorted(p.name for p in self.image_root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not names:
                raise DatasetError(f"no video folders in {self.image_root}")
        else:
            names = list(videos)
            if len(set(names)) != len(names):
                raise DatasetError(f"videos: duplicate names in {names}")
        self._frames = {name: self._frame_files(name) for name in names}
        self._names = names

    def _frame_files(self, name: str) -> list[Path]:
        folder = self.image_root / name
        if not name or name in (".", "..") or Path(name).name != name:
            raise DatasetError(f"video name {name!r} is not a plain folder name (under {self.image_root})")
        if not folder.is_dir():
            raise DatasetError(f"missing video folder {folder}")
        files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")),
            key=lambda p: p.name,
        )
        if not files:
            raise DatasetError(f"no frames ({'/'.join(FRAME_SUFFIXES)}) in video folder {folder}")
        stems = [p.stem for p in files]
        for stem in sorted({s for s in stems if stems.count(s) > 1}):
            clash = [str(p) for p in files if p.stem == stem]
            raise DatasetError(f"frames {clash} share the name {stem!r} (one annotation cannot serve both)")
        return files

    @property
    def names(self) -> list[str]:
        """The video names, in dataset order."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def frame_paths(self, name: str) -> list[Path]:
        """The frame files of video ``name``, sorted by file name."""
        if name not in self._frames:
            raise KeyError(f"unknown video {name!r}; this dataset has {self._names}")
        return list(self._frames[name])

    def load(self, name: str) -> VideoSample:
        """Read video ``name``: frames sorted by file name, each with its annotation PNG."""
        frames: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        paths = self.frame_paths(name)
        for path in paths:
            mask_path = self.mask_root / name / f"{path.stem}.png"
            if not mask_path.is_file():
                raise DatasetError(f"missing mask {mask_path} for frame {path}")
            frame = np.asarray(_read(path, "frame").convert("RGB"), dtype=np.uint8)
            if frames and frame.shape != frames[0].shape:
                raise DatasetError(
                    f"frame {path}: frame size {frame.shape[1]}x{frame.shape[0]} differs from the video's first frame "
                    f"{paths[0]} ({frames[0].shape[1]}x{frames[0].shape[0]})"
                )
            image = _read(mask_path, "mask")
            if image.mode not in _MASK_MODES:
                raise DatasetError(
                    f"mask {mask_path}: mode {image.mode!r} is not supported "
                    "(expected a palette 'P' or grayscale 'L' PNG)"
                )
            mask = np.asarray(image, dtype=np.uint8)
            if mask.shape != frame.shape[:2]:
                raise DatasetError(
                    f"mask {mask_path}: size {mask.shape[1]}x{mask.shape[0]} differs from frame {path} "
                    f"({frame.shape[1]}x{frame.shape[0]})"
                )
            frames.append(frame)
            masks.append(np.ascontiguousarray(mask))
        return VideoSample(name, frames, masks, [p.stem for p in paths])


def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour palette ``[256, 3]`` uint8 (index 0 black, 1 red, 2 green, ...)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        code, rgb = index, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette[index] = rgb
    return palette


def write_davis(videos: dict[str, SyntheticVideo], root: str | Path) -> None:
    """Save videos in the DAVIS layout under ``root``.

    ``root/JPEGImages/<name>/00000.jpg`` (JPEG quality 95) and ``root/Annotations/<name>/00000.png``
    (8-bit palette PNG whose pixel value is the object id, 0 background).
    """
    root = Path(root)
    palette = davis_palette().reshape(-1).tolist()
    for name, video in videos.items():
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"write_davis: video name {name!r} must be a plain folder name")
        if len(video.frames) != len(video.masks):
            raise ValueError(f"write_davis: video {name!r} has {len(video.frames)} frames but {len(video.masks)} masks")
        if any(not 0 < i <= 255 for i in video.object_ids):
            raise ValueError(f"write_davis: video {name!r} object ids {video.object_ids} must be in 1..255")
        image_dir, mask_dir = root / "JPEGImages" / name, root / "Annotations" / name
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(video.frames):
            Image.fromarray(frame).save(image_dir / f"{t:05d}.jpg", quality=95)
            ids = video.label_map(t)
            png = Image.frombytes("P", (ids.shape[1], ids.shape[0]), ids.tobytes())
            png.putpalette(palette)
            png.save(mask_dir / f"{t:05d}.png")
