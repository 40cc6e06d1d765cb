"""Mask post-processing: filling small background holes and the non-overlap constraint.

Connected components are computed with tensor ops (min-label propagation with pointer
jumping), so they run on the GPU as well as on the CPU; small holes are found with a fixed
amount of work (no host synchronisation inside a frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["connected_components", "fill_holes", "non_overlap", "small_components"]


def _propagate(labels: Tensor, mask: Tensor, big: float) -> Tensor:
    """One round of min-label propagation: each masked pixel takes the smallest label among
    its 8 neighbours, then the label of the pixel its label points to (pointer jumping; that
    pixel is in the same component). ``labels``: ``[B, H, W]`` float (1-based flat indices,
    ``big`` outside the mask)."""
    b, h, w = labels.shape
    n = h * w
    neighbour_min = -F.max_pool2d(-labels[:, None], kernel_size=3, stride=1, padding=1)[:, 0]
    labels = torch.where(mask, torch.minimum(labels, neighbour_min), big)
    table = torch.cat((labels.reshape(b, n), labels.new_full((b, 1), big)), dim=1).reshape(-1)
    flat_offset = (torch.arange(b, device=mask.device) * (n + 1))[:, None]
    ptr = (labels.reshape(b, n).long() - 1).clamp(max=n) + flat_offset
    return torch.where(mask, table[ptr].reshape(b, h, w), big)


def _initial_labels(mask: Tensor) -> tuple[Tensor, float]:
    b, h, w = mask.shape
    n = h * w
    if n >= 2**24:
        raise ValueError("connected_components: map too large for exact float pooling")
    big = float(n + 1)
    idx = torch.arange(1, n + 1, device=mask.device, dtype=torch.float32).reshape(1, h, w).expand(b, h, w)
    return torch.where(mask, idx, big), big


def _per_label_sum(labels: Tensor, values: Tensor) -> Tensor:
    """Sum of ``values`` over the pixels of each label, read back at every pixel:
    ``labels`` ``[B, H, W]`` long (0 = none), ``values`` ``[B, H, W]`` long -> ``[B, H, W]``."""
    b, h, w = labels.shape
    n = h * w
    sums = torch.zeros(b, n + 1, dtype=torch.long, device=labels.device)
    sums.scatter_add_(1, labels.reshape(b, n), values.reshape(b, n))
    sums[:, 0] = 0
    return torch.gather(sums, 1, labels.reshape(b, n)).reshape(b, h, w)


def connected_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    """8-connected components of binary masks (run to convergence: one host sync per round).

    Args:
        mask: ``[B, H, W]`` bool.
    Returns:
        labels ``[B, H, W]`` (int64, 0 outside the mask, else the smallest 1-based flat index
        in the component) and areas ``[B, H, W]`` (the component's pixel count, 0 outside).
    """
    labels, big = _initial_labels(mask)
    while True:
        prev = labels
        for _ in range(4):
            labels = _propagate(labels, mask, big)
        if torch.equal(labels, prev):
            break
    labels = torch.where(mask, labels, 0.0).long()
    return labels, _per_label_sum(labels, mask.long())


def small_components(mask: Tensor, max_area: int) -> Tensor:
    """The pixels of ``mask`` ``[B, H, W]`` bool in 8-connected components of at most
    ``max_area`` pixels: ``[B, H, W]`` bool.

    A fixed amount of work, no host synchronisation: ``max_area - 1`` propagation rounds
    give every pixel of such a component (geodesic diameter < ``max_area``) the same label.
    A label is then a whole component exactly when no pixel carrying it touches a masked
    pixel with another label (components are connected); whole components of at most
    ``max_area`` pixels are the answer.
    """
    if max_area <= 0:
        return torch.zeros_like(mask)
    labels, big = _initial_labels(mask)
    for _ in range(max_area - 1):
        labels = _propagate(labels, mask, big)
    lowest = -F.max_pool2d(-labels[:, None], kernel_size=3, stride=1, padding=1)[:, 0]
    highest = F.max_pool2d(torch.where(mask, labels, 0.0)[:, None], kernel_size=3, stride=1, padding=1)[:, 0]
    touches_other = mask & ((lowest != labels) | (highest != labels))
    ids = torch.where(mask, labels, 0.0).long()
    area = _per_label_sum(ids, mask.long())
    open_label = _per_label_sum(ids, touches_other.long()) > 0
    return mask & (area <= max_area) & ~open_label


# Up to this hole area the fixed-work algorithm is used; above it, the converging one.
_FIXED_WORK_MAX_AREA = 64


def fill_holes(logits: Tensor, max_area: int) -> Tensor:
    """Set background holes (8-connected components of ``logits <= 0`` with at most
    ``max_area`` pixels) to 0.1, as the official predictor does: ``[B, 1, h, w]``.

    No host synchronisation for ``max_area <= 64`` (the default is 8)."""
    if max_area <= 0:
        return logits
    background = logits[:, 0] <= 0
    if max_area <= _FIXED_WORK_MAX_AREA:
        holes = small_components(background, max_area)
    else:
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
