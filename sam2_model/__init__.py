"""SAM 2 / 2.1 in plain PyTorch: loads Meta's official checkpoints and gives their masks.

No ROS import anywhere in this package.
"""

from .build import build_sam2, resolve_device
from .checkpoint import (
    CheckpointError,
    CheckpointFormatError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    guess_config_name,
    load_checkpoint,
    save_checkpoint,
)
from .config import CONFIGS, HieraConfig, SAM2Config, config_names, get_config
from .image_predictor import ImagePrediction, SAM2ImagePredictor
from .modeling import NO_OBJ_SCORE, HeadsOutput, ImageFeatures, SAM2Model
from .prompts import Prompt, validate_prompt
from .tracker import FrameResult, ObjectResult, SAM2Tracker, TrackerOptions, TrackerStats, track_many

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "NO_OBJ_SCORE",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "FrameResult",
    "HeadsOutput",
    "HieraConfig",
    "ImageFeatures",
    "ImagePrediction",
    "ObjectResult",
    "Prompt",
    "SAM2Config",
    "SAM2ImagePredictor",
    "SAM2Model",
    "SAM2Tracker",
    "TrackerOptions",
    "TrackerStats",
    "build_sam2",
    "config_names",
    "get_config",
    "guess_config_name",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "track_many",
    "validate_prompt",
]
