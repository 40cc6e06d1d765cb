"""An exponential moving average of the weights during training (``--ema-decay``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["WeightAverage"]


class WeightAverage:
    """An exponential moving average of a model's floating-point weights and buffers:
    after each optimiser step ``avg = decay * avg + (1 - decay) * weight``, starting from the
    weights it is created with. Integer buffers are not averaged."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        current = model.state_dict()
        for name, avg in self.state.items():
            avg.lerp_(current[name].detach(), 1.0 - self.decay)

    def load(self, state: dict[str, Tensor]) -> None:
        if state.keys() != self.state.keys():
            raise ValueError("ema: the saved weight average does not match the model's weights")
        for name, avg in self.state.items():
            avg.copy_(state[name])

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Put the averaged weights into ``model``."""
        current = model.state_dict()
        for name, avg in self.state.items():
            current[name].copy_(avg)
