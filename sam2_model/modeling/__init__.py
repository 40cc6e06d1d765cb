"""SAM 2 network components (plain PyTorch)."""

from .sam2 import NO_OBJ_SCORE, HeadsOutput, ImageFeatures, SAM2Model

__all__ = ["NO_OBJ_SCORE", "HeadsOutput", "ImageFeatures", "SAM2Model"]
