"""Mask post-processing: filling small background holes and the non-overlap constraint.

Connected components are computed with tensor ops (min-label propagation with pointer
jumping, run to convergence), so they run on the GPU as well as on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["connected_components", "fill_holes", "non_overlap"]


def connected_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    """8-connected components of binary masks.

    Args:
        mask: ``[B, H, W]`` bool.
    Returns:
        labels ``[B, H, W]`` (int64, 0 outside the mask, else the smallest 1-based flat index
        in the component) and areas ``[B, H, W]`` (the component's pixel count, 0 outside).
    """
    b, h, w = mask.shape
    n = h * w
    if n >= 2**24:
        raise ValueError("connected_components: map too large for exact float pooling")
    big = float(n + 1)
    idx = torch.arange(1, n + 1, device=mask.device, dtype=torch.float32).reshape(1, h, w).expand(b, h, w)
    labels = torch.where(mask, idx, big)
    flat_offset = (torch.arange(b, device=mask.device) * (n + 1))[:, None]
    while True:
        prev = labels
        for _ in range(4):
            neighbour_min = -F.max_pool2d(-labels[:, None], kernel_size=3, stride=1, padding=1)[:, 0]
            labels = torch.where(mask, torch.minimum(labels, neighbour_min), big)
            # pointer jumping: take the label of the pixel a label points to (same component)
            table = torch.cat((labels.reshape(b, n), labels.new_full((b, 1), big)), dim=1).reshape(-1)
            ptr = (labels.reshape(b, n).long() - 1).clamp(max=n) + flat_offset
            labels = torch.where(mask, table[ptr].reshape(b, h, w), big)
        if torch.equal(labels, prev):
            break
    labels = torch.where(mask, labels, 0.0).long()
    counts = torch.zeros(b, n + 1, dtype=torch.long, device=mask.device)
    counts.scatter_add_(1, labels.reshape(b, n), torch.ones(b, n, dtype=torch.long, device=mask.device))
    counts[:, 0] = 0
    areas = torch.gather(counts, 1, labels.reshape(b, n)).reshape(b, h, w)
    return labels, areas


def fill_holes(logits: Tensor, max_area: int) -> Tensor:
    """Set background holes (8-connected components of ``logits <= 0`` with at most
    ``max_area`` pixels) to 0.1, as the official predictor does: ``[B, 1, h, w]``."""
    if max_area <= 0:
        return logits
    background = logits[:, 0] <= 0
    labels, areas = connected_components(background)
    holes = (labels > 0) & (areas <= max_area)
    return torch.where(holes[:, None], torch.full_like(logits, 0.1), logits)


def non_overlap(logits: Tensor) -> Tensor:
    """Keep each pixel for the highest-scoring object only; the others get at most -10:
    ``[B, 1, H, W]`` over B objects."""
    if logits.shape[0] <= 1:
        return logits
    winner = torch.argmax(logits, dim=0, keepdim=True)
    index = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(winner == index, logits, logits.clamp(max=-10.0))
