"""Weights stored in the autocast dtype (option ``cast_weights``).

Under autocast every linear layer and convolution casts its fp32 weight and bias to bf16 /
fp16 on each call (on the CPU once per frame, within a CUDA graph on every replay): about
a fifth of a bf16 frame on the CPU. Storing those weights in that dtype gives the very same
products (autocast then casts nothing; the cast it would make is the one done here, once),
and leaves everything autocast computes in fp32 (norms, embeddings, the other parameters)
untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..modeling.sam2 import SAM2Model

__all__ = ["CAST_MODULES", "with_autocast_weights"]

# the layers whose weight and bias autocast casts to its lower precision
CAST_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)


def with_autocast_weights(model: SAM2Model, dtype: torch.dtype) -> SAM2Model:
    """A copy of ``model`` whose linear and convolution weights and biases are ``dtype``
    (for use under ``torch.autocast(dtype=dtype)`` only); ``model`` is left as it is."""
    with torch.inference_mode(False):  # ordinary tensors even when called in inference mode
        copied = copy.deepcopy(model)
        for module in copied.modules():
            if isinstance(module, CAST_MODULES):
                for name in ("weight", "bias"):
                    param = getattr(module, name, None)
                    if param is not None:
                        param.data = param.data.to(dtype)
    return copied.eval()
