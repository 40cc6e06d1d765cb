"""SAM 2 training and fine-tuning (the ``sam2-train`` command)."""

from .trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
