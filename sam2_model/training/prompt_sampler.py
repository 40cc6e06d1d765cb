"""Training prompts drawn from ground-truth masks, as in SAM 2's training: each prompted frame
gets the mask itself, a click inside it or a (jittered) box around it; correction rounds add one
click sampled uniformly from the error region (positive on a missed pixel, negative on a false
one)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PromptProbabilities", "PromptSampler", "TrainingPrompt"]


@dataclass(frozen=True)
class PromptProbabilities:
    """Chances of each prompt kind on a prompted frame (normalised by their sum)."""

    mask: float = 0.5  # the ground-truth mask itself
    click: float = 0.25  # one positive click, uniform inside the mask
    box: float = 0.25  # the tight box of the mask, jittered


@dataclass
class TrainingPrompt:
    """A prompt sampled for one frame of an ``H x W`` ground-truth mask."""

    kind: str  # "mask", "click" or "box"
    points: np.ndarray  # [N, 2] float32 (x, y) pixels; empty for mask and box prompts
    labels: np.ndarray  # [N] int32 (1 positive, 0 negative)
    box: np.ndarray | None  # [4] float32 (x0, y0, x1, y1) inclusive pixels, or None
    mask: np.ndarray | None  # [H, W] bool, or None


def _no_points() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 2), dtype=np.float32), np.zeros((0,), dtype=np.int32)


def _check_mask(name: str, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected an [H, W] mask, got shape {mask.shape}")
    return mask.astype(bool)


class PromptSampler:
    """Draws training prompts from ground-truth masks with a seeded ``numpy.random.Generator``."""

    def __init__(
        self,
        probabilities: PromptProbabilities = PromptProbabilities(),
        box_noise: float = 0.1,
        box_noise_max: int = 20,
        seed: int | list[int] | None = None,
    ) -> None:
        """``box_noise``: largest move of a box coordinate as a fraction of the box side;
        ``box_noise_max``: cap of that move in pixels; ``seed``: for reproducible draws."""
        probs = np.array([probabilities.mask, probabilities.click, probabilities.box], dtype=np.float64)
        if (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"probabilities: need non-negative values with a positive sum, got {probabilities}")
        self.probabilities = probabilities
        self.box_noise = float(box_noise)
        self.box_noise_max = float(box_noise_max)
        self._cumulative = np.cumsum(probs / probs.sum())
        self.rng = np.random.default_rng(seed)  # all draws; its bit_generator.state can be saved/restored

    def sample(self, gt: np.ndarray) -> TrainingPrompt:
        """A mask, click or box prompt for ``gt`` ``[H, W]`` bool (non-empty)."""
        gt = _check_mask("gt", gt)
        if not gt.any():
            raise ValueError("gt: the mask is empty")
        index = int(np.searchsorted(self._cumulative, self.rng.random(), side="right"))
        kind = ("mask", "click", "box")[min(index, 2)]  # min: the cumulative sum may end a hair below 1
        points, labels = _no_points()
        if kind == "mask":
            return TrainingPrompt(kind, points, labels, box=None, mask=gt.copy())
        if kind == "click":
            ys, xs = np.nonzero(gt)
            i = self.rng.integers(len(xs))
            points = np.array([[xs[i], ys[i]]], dtype=np.float32)
            return TrainingPrompt(kind, points, np.ones(1, dtype=np.int32), box=None, mask=None)
        return TrainingPrompt(kind, points, labels, box=self._noisy_box(gt), mask=None)

    def _noisy_box(self, gt: np.ndarray) -> np.ndarray:
        """Tight inclusive box of ``gt`` ``[H, W]`` with every coordinate jittered: ``[4]`` float32."""
        h, w = gt.shape
        ys, xs = np.nonzero(gt)
        box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
        sides = np.array([box[2] - box[0], box[3] - box[1]] * 2)
        max_move = np.minimum(self.box_noise * sides, self.box_noise_max)
        box = box + self.rng.uniform(-1.0, 1.0, size=4) * max_move
        box = box.clip(0, [w - 1, h - 1, w - 1, h - 1])
        # Moves below half a side cannot cross the corners; keep the order in any case.
        box = np.array([min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])])
        return box.astype(np.float32)

    def correction(self, gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, int] | None:
        """A corrective click, uniform over the error pixels of ``pred`` ``[H, W]`` against ``gt`` ``[H, W]``.

        Returns ``((x, y) float32 [2], label)``: label 1 on a false-negative pixel (missed object),
        0 on a false-positive one; so the kind follows the two regions' areas. None if no error.
        """
        gt = _check_mask("gt", gt)
        pred = _check_mask("pred", pred)
        if gt.shape != pred.shape:
            raise ValueError(f"pred: shape {pred.shape} differs from gt {gt.shape}")
        ys, xs = np.nonzero(gt != pred)
        if len(xs) == 0:
            return None
        i = self.rng.integers(len(xs))
        label = int(gt[ys[i], xs[i]])
        return np.array([xs[i], ys[i]], dtype=np.float32), label
