"""Depth in bags for ``sam2-track``: each colour frame paired with the depth image and the
camera_info nearest to it in header stamp (within a slop), as the node's synchroniser pairs
them live, and decoded to metres at the colour image's size."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import Intrinsics, check_depth, decode_depth, fit_depth
from .config import TrackError

__all__ = [
    "DEPTH_TYPE",
    "INFO_TYPE",
    "DepthFrame",
    "DepthPairing",
    "DepthTopics",
    "decode_depth_msg",
    "intrinsics_of",
    "paired",
]

DEPTH_TYPE, INFO_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"


@dataclass
class DepthFrame:
    """The depth paired with one colour frame."""

    metres: np.ndarray  # [H, W] float32 at the colour image's size (0, NaN, inf: no reading)
    intrinsics: Intrinsics  # the colour camera's, for that size


@dataclass(frozen=True)
class DepthTopics:
    """The depth topics of a bag (``--depth-topic``, ``--camera-info-topic``)."""

    depth: str  # sensor_msgs/Image aligned to the colour image: 16UC1 (mm) or 32FC1 (m)
    camera_info: str  # sensor_msgs/CameraInfo of the colour camera
    slop_ns: int  # largest stamp difference of a pair, nanoseconds

    def check(self, topics: dict[str, str], path: Path) -> None:
        """Both topics exist in the bag with their types; a TrackError naming the flag otherwise."""
        for flag, topic, kind in (
            ("depth_topic", self.depth, DEPTH_TYPE),
            ("camera_info_topic", self.camera_info, INFO_TYPE),
        ):
            if topics.get(topic) != kind:
                found = f"a {topics[topic]} topic" if topic in topics else "not in the bag"
                raise TrackError(f"{flag}: {topic} is {found}, expected {kind} (bag {path})")


class DepthPairing:
    """Which depth and camera_info stamps go with each colour stamp: the nearest of each,
    within ``slop_ns`` (else none)."""

    def __init__(self, depth_stamps: list[int], info_stamps: list[int], slop_ns: int) -> None:
        self._depth, self._info, self.slop_ns = sorted(depth_stamps), sorted(info_stamps), slop_ns

    def _nearest(self, stamps: list[int], stamp: int) -> int | None:
        i = bisect.bisect_left(stamps, stamp)
        near = [s for s in stamps[max(i - 1, 0) : i + 1] if abs(s - stamp) <= self.slop_ns]
        return min(near, key=lambda s: (abs(s - stamp), s)) if near else None

    def match(self, stamp: int) -> tuple[int, int] | None:
        """``(depth stamp, camera_info stamp)`` for a colour frame, or None when either has none."""
        depth, info = self._nearest(self._depth, stamp), self._nearest(self._info, stamp)
        return None if depth is None or info is None else (depth, info)


def decode_depth_msg(msg: object, image_hw: tuple[int, int]) -> np.ndarray:
    """A deserialised ``sensor_msgs/Image`` of depth -> ``[H, W]`` float32 metres at ``image_hw``.

    Raises:
        TrackError: naming ``depth_topic`` when the image cannot be decoded.
    """
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    try:
        check_depth(msg.encoding, h, w, step, data.size)
    except ValueError as err:
        raise TrackError(f"depth_topic: {err}") from err
    return fit_depth(decode_depth(msg.encoding, h, w, step, data.tobytes(), bool(msg.is_bigendian)), image_hw)


def intrinsics_of(msg: object, image_hw: tuple[int, int]) -> Intrinsics:
    """A deserialised ``sensor_msgs/CameraInfo`` -> the intrinsics for an image of ``image_hw``.

    Raises:
        TrackError: naming ``camera_info_topic`` when ``k`` is not a pinhole calibration.
    """
    try:
        return Intrinsics.from_camera_info(list(msg.k), int(msg.width), int(msg.height), image_hw)
    except ValueError as err:
        raise TrackError(f"camera_info_topic: {err}") from err


def paired(
    messages: Iterator[tuple[str, int, object]],
    matches: dict[int, tuple[int, int] | None],
) -> Iterator[tuple[object, object | None, object | None]]:
    """Colour messages in order, each with its depth and camera_info messages (or None).

    ``messages`` are ``(role, stamp, message)`` in recording order, role ``colour``, ``depth``
    or ``camera_info``; ``matches`` gives the paired stamps of every colour stamp that will
    come (:meth:`DepthPairing.match`). A depth or camera_info message is kept from its arrival
    until the last colour frame paired with it is out, and a colour message waits until its
    pair has come: both are recorded close together, so memory stays bounded by the skew.
    """
    wanted: dict[tuple[str, int], int] = {}  # (role, stamp) -> colour frames still to pair with it
    for match in matches.values():
        for key in _keys(match) if match is not None else ():
            wanted[key] = wanted.get(key, 0) + 1
    kept: dict[tuple[str, int], object] = {}
    waiting: deque[tuple[object, tuple[int, int] | None]] = deque()
    for role, stamp, message in messages:
        if role == "colour":
            waiting.append((message, matches.get(stamp)))
        elif (role, stamp) in wanted:
            kept[(role, stamp)] = message
        while waiting and (waiting[0][1] is None or all(k in kept for k in _keys(waiting[0][1]))):
            yield _release(waiting.popleft(), wanted, kept)
    while waiting:  # the end of the bag: what never came stays None
        yield _release(waiting.popleft(), wanted, kept)


def _keys(match: tuple[int, int]) -> tuple[tuple[str, int], tuple[str, int]]:
    return ("depth", match[0]), ("camera_info", match[1])


def _release(item: tuple, wanted: dict, kept: dict) -> tuple[object, object | None, object | None]:
    message, match = item
    if match is None:
        return message, None, None
    out = []
    for key in _keys(match):
        out.append(kept.get(key))
        wanted[key] -= 1
        if wanted[key] == 0:  # no other colour frame needs it
            del wanted[key]
            kept.pop(key, None)
    depth, info = out
    return (message, depth, info) if depth is not None and info is not None else (message, None, None)
