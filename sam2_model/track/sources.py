"""Frames of a video file or an image folder (bags: :mod:`.bag`), probed before any work.

Each source is opened once up front (:func:`open_source`): that checks it can be read and
tells its frame size and count, so that prompts and outputs are checked before tracking.
Frames are then read in order, decoding only the selected ones (``--start/--stride/--max-frames``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .config import TrackConfig, TrackError

__all__ = [
    "IMAGE_SUFFIXES",
    "Frame",
    "FrameSource",
    "Selection",
    "SourceInfo",
    "format_stamp",
    "index_name",
    "open_source",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")  # image folders
BAG_SUFFIXES = (".mcap", ".db3")  # single-file ROS 2 bags (a bag folder has metadata.yaml)


def format_stamp(ns: int) -> str:
    """Nanoseconds as seconds with nine decimals, exactly (no float rounding of 1.7e18 ns)."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def index_name(index: int) -> str:
    """The output name of frame ``index`` of a video or a bag: ``00042``."""
    return f"{index:05d}"


@dataclass(frozen=True)
class Selection:
    """Which input frames are processed: ``start``, then every ``stride``-th, at most ``max_frames``."""

    start: int = 0  # first input frame processed
    stride: int = 1  # step between processed frames
    max_frames: int | None = None  # most frames processed (None: no limit)

    def contains(self, index: int) -> bool:
        """Whether input frame ``index`` is processed (frame counts aside)."""
        if index < self.start or (index - self.start) % self.stride:
            return False
        return self.max_frames is None or (index - self.start) // self.stride < self.max_frames

    def end(self, count: int) -> int:
        """One past the last input frame processed in an input of ``count`` frames."""
        last = count if self.max_frames is None else min(count, self.start + self.max_frames * self.stride)
        return max(last, self.start)

    def planned(self, count: int) -> int:
        """How many frames an input of ``count`` frames gives."""
        return len(range(self.start, self.end(count), self.stride))

    def describe(self) -> str:
        text = f"--start {self.start} --stride {self.stride}"
        return text + (f" --max-frames {self.max_frames}" if self.max_frames is not None else "")


@dataclass
class Frame:
    """One decoded input frame."""

    index: int  # position in the input, from 0 (before --start/--stride)
    name: str  # output file stem: the image file's stem, or the index as 00042
    stamp_ns: int | None  # bags: header stamp; videos: position in the video; folders: None
    image: np.ndarray  # [H, W, 3] uint8 RGB
    record: object | None = None  # bags: the input message (BagRecord), copied to --out-bag
    depth: object | None = None  # bags with --depth-topic: the paired DepthFrame (None: no pair within the slop)


@dataclass(frozen=True)
class SourceInfo:
    """What is known about an input before reading it."""

    kind: str  # "video", "folder" or "bag"
    path: Path  # the input
    count: int  # frames in the input (videos: the container's count, which may be an estimate)
    height: int  # frame height in pixels
    width: int  # frame width in pixels
    fps: float | None  # frames per second, when the input says
    names: tuple[str, ...] = ()  # folders: the image stems in order; else index_name(index)

    def name(self, index: int) -> str:
        return self.names[index] if self.names else index_name(index)

    def describe_frame(self, index: int) -> str:
        return f"frame {index} ({self.name(index)})" if self.names else f"frame {index}"


class FrameSource(Protocol):
    """An opened input."""

    info: SourceInfo

    def frames(self, selection: Selection) -> Iterator[Frame]:
        """The selected frames, in input order (may run in another thread)."""
        ...


class VideoSource:
    """A video file, decoded with OpenCV."""

    def __init__(self, path: Path) -> None:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            ok, first = cap.read() if cap.isOpened() else (False, None)
            if not ok:
                raise TrackError(f"input: cannot read video file {path} (OpenCV cannot decode it or it has no frame)")
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(cap.get(cv2.CAP_PROP_FPS))
        finally:
            cap.release()
        h, w = first.shape[:2]
        self.info = SourceInfo("video", path, max(count, 1), h, w, fps if fps > 0 else None)

    def frames(self, selection: Selection) -> Iterator[Frame]:
        import cv2

        cap = cv2.VideoCapture(str(self.info.path))
        fps = self.info.fps or 0.0
        try:
            index, stop = 0, selection.end(sys.maxsize)
            while index < stop:
                if not selection.contains(index):
                    if not cap.grab():
                        return
                    index += 1
                    continue
                ok, bgr = cap.read()
                if not ok:
                    return
                stamp = round(index * 1e9 / fps) if fps else None
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(index, index_name(index), stamp, rgb)
                index += 1
        finally:
            cap.release()


def _image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from an image file's header, or a TrackError naming it."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise TrackError(f"input: cannot read image {path}: {err}") from err


class FolderSource:
    """A folder of images, sorted by file name (read with Pillow, like the DAVIS reader)."""

    def __init__(self, path: Path) -> None:
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
            key=lambda p: p.name,
        )
        if not files:
            raise TrackError(f"input: no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        stems = [p.stem for p in files]
        if len(set(stems)) != len(stems):
            clash = sorted({s for s in stems if stems.count(s) > 1})[0]
            raise TrackError(f"input: images in {path} share the name {clash!r} (their masks would too)")
        h, w = _image_size(files[0])
        for p in files[1:]:  # headers only: a frame of another size is an error before any work
            if _image_size(p) != (h, w):
                hh, ww = _image_size(p)
                raise TrackError(f"input: image {p} is {ww}x{hh}, the folder's first image {files[0].name} is {w}x{h}")
        self.files = files
        self.info = SourceInfo("folder", path, len(files), h, w, None, tuple(stems))

    def frames(self, selection: Selection) -> Iterator[Frame]:
        for index in range(selection.start, selection.end(len(self.files)), selection.stride):
            path = self.files[index]
            try:
                with Image.open(path) as image:
                    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
            except (OSError, SyntaxError, ValueError) as err:
                raise TrackError(f"input: cannot read image {path}: {err}") from err
            yield Frame(index, path.stem, None, rgb)


def open_source(config: TrackConfig) -> FrameSource:
    """Open ``config.input``; a :class:`TrackError` naming it when it cannot be used."""
    path = Path(config.input).expanduser()
    if not path.exists():
        raise TrackError(f"input: {path} does not exist")
    is_bag = (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix.lower() in BAG_SUFFIXES
    if is_bag:
        from .bag import BagSource
        from .depth import DepthTopics

        depth = None
        if config.depth_topic is not None:
            depth = DepthTopics(config.depth_topic, config.camera_info_topic, round(config.sync_slop * 1e9))
        return BagSource(path, config.topic, depth)
    if config.topic is not None or config.depth_topic is not None:
        flag = "topic" if config.topic is not None else "depth_topic"
        raise TrackError(f"{flag}: only bags have topics; {path} is not a ROS 2 bag")
    if path.is_dir():
        return FolderSource(path)
    return VideoSource(path)
