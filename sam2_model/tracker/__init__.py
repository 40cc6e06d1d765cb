"""The streaming tracker: SAM 2's video memory on a live stream, bounded, batched."""

from .multi import track_many
from .options import TrackerOptions
from .results import FrameResult, ObjectResult, ObjectStats, TrackerStats
from .tracker import SAM2Tracker

__all__ = [
    "FrameResult",
    "ObjectResult",
    "ObjectStats",
    "SAM2Tracker",
    "TrackerOptions",
    "TrackerStats",
    "track_many",
]
