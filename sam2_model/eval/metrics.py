"""Video object segmentation metrics with DAVIS's definitions.

J: region similarity, the IoU of predicted and ground-truth masks (1 when both are empty).
F: contour accuracy, the F-measure of boundary precision and recall, a boundary pixel
counting as matched when the other boundary lies within ``ceil(bound_th * image diagonal)``
pixels (DAVIS: 0.008); 1 when both masks are empty, 0 when exactly one is. Checked against
the ``vos-benchmark`` package in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SequenceScore", "boundary", "f_measure", "jaccard", "score_sequence"]


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two ``[H, W]`` bool masks; 1.0 when both are empty."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """DAVIS's boundary map: pixels whose value differs from their right, lower or
    lower-right neighbour (the last row compares right only, the last column down only)."""
    m = mask.astype(bool)
    right, down, diag = np.zeros_like(m), np.zeros_like(m), np.zeros_like(m)
    right[:, :-1] = m[:, 1:]
    down[:-1, :] = m[1:, :]
    diag[:-1, :-1] = m[1:, 1:]
    b = (m ^ right) | (m ^ down) | (m ^ diag)
    b[-1, :] = m[-1, :] ^ right[-1, :]
    b[:, -1] = m[:, -1] ^ down[:, -1]
    b[-1, -1] = False
    return b


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with a disk of ``radius`` pixels."""
    if radius <= 0:
        return mask.copy()
    h, w = mask.shape
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                out |= padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
    return out


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """Boundary F-measure of two ``[H, W]`` bool masks (DAVIS)."""
    pred_b, gt_b = boundary(pred), boundary(gt)
    if not gt_b.any() and not pred_b.any():
        return 1.0
    if not gt_b.any() or not pred_b.any():
        return 0.0
    radius = math.ceil(bound_th * math.hypot(*pred.shape)) if bound_th < 1 else int(bound_th)
    precision = float((pred_b & _dilate(gt_b, radius)).sum() / pred_b.sum())
    recall = float((gt_b & _dilate(pred_b, radius)).sum() / gt_b.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class SequenceScore:
    """Mean J, F and J&F of one object over the evaluated frames."""

    j: float
    f: float
    frames: int

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def score_sequence(preds: list[np.ndarray], gts: list[np.ndarray], skip_first: bool = True) -> SequenceScore:
    """J and F averaged over frames (DAVIS skips the prompted first frame)."""
    pairs = list(zip(preds, gts))[1 if skip_first else 0 :]
    js = [jaccard(p, g) for p, g in pairs]
    fs = [f_measure(p, g) for p, g in pairs]
    return SequenceScore(float(np.mean(js)), float(np.mean(fs)), len(pairs))
