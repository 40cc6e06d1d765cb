"""Data for training and evaluating the video tracker: synthetic videos and DAVIS-layout datasets.

The modules here use numpy and Pillow only (no ROS, no torch of their own).
"""

from .davis import DatasetError, DavisDataset, VideoSample, davis_palette, write_davis
from .synthetic import SyntheticConfig, SyntheticVideo, generate_video

__all__ = [
    "DatasetError",
    "DavisDataset",
    "SyntheticConfig",
    "SyntheticVideo",
    "VideoSample",
    "davis_palette",
    "generate_video",
    "write_davis",
]
