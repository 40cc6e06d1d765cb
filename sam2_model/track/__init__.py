"""Offline tracking: the streaming tracker over a video file, an image folder or a ROS 2 bag
(``sam2-track``), writing DAVIS masks, tracks, an overlay video and an output bag, with
J&F against ground truth. No ROS install needed (bags are read and written with rosbags)."""

from .config import TrackConfig, TrackError
from .evaluate import EvalResult, StreamingEvaluator
from .pipeline import ObjectSummary, TrackSummary, run_tracking

__all__ = [
    "EvalResult",
    "ObjectSummary",
    "StreamingEvaluator",
    "TrackConfig",
    "TrackError",
    "TrackSummary",
    "run_tracking",
]
