"""SAM 2's training losses: sigmoid focal + dice on the masks, an L1 loss on the predicted IoU
and a binary cross-entropy on the object-presence logit.

With ``M > 1`` candidate masks only the candidate with the lowest weighted mask loss
(focal + dice) gets the mask losses; the IoU head is supervised on every candidate. Items whose
target is empty (object absent in that frame) only get the object-score loss, with target 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossOutput", "LossWeights", "actual_iou", "dice_loss", "sam2_loss", "sigmoid_focal_loss"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms in the total (SAM 2's training configuration)."""

    focal: float = 20.0  # sigmoid focal loss on the (best) mask
    dice: float = 1.0  # dice loss on the (best) mask
    iou: float = 1.0  # L1 between predicted and actual IoU, every candidate
    object_score: float = 1.0  # BCE on the object-presence logit


@dataclass
class LossOutput:
    """The total loss and its unweighted parts, each a scalar."""

    total: Tensor  # weighted sum of the parts below
    focal: Tensor  # mean focal loss over the items with the object present
    dice: Tensor  # mean dice loss over the items with the object present
    iou: Tensor  # mean L1 IoU loss over the items with the object present
    object_score: Tensor  # mean object-score BCE over all items


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss, averaged over pixels.

    ``logits`` ``[N, H, W]`` (any ``[N, ...]``), ``targets`` same shape (bool or float in [0, 1]);
    returns ``[N]``. A negative ``alpha`` disables the class weighting.
    """
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    prob = logits.sigmoid()
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.flatten(1).mean(1)


def dice_loss(logits: Tensor, targets: Tensor, eps: float = 1.0) -> Tensor:
    """Soft dice loss ``1 - (2 sum(p t) + eps) / (sum p + sum t + eps)`` with ``p = sigmoid(logits)``.

    ``logits`` ``[N, H, W]`` (any ``[N, ...]``), ``targets`` same shape; returns ``[N]``.
    """
    prob = logits.sigmoid().flatten(1)
    targets = targets.to(logits.dtype).flatten(1)
    numerator = 2 * (prob * targets).sum(1) + eps
    denominator = prob.sum(1) + targets.sum(1) + eps
    return 1 - numerator / denominator


@torch.no_grad()
def actual_iou(logits: Tensor, targets: Tensor) -> Tensor:
    """IoU of the predicted mask ``logits > 0`` with ``targets > 0``; 1.0 when both are empty.

    ``logits`` ``[N, H, W]`` (any ``[N, ...]``), ``targets`` same shape; returns ``[N]`` float
    (no gradient: the threshold is not differentiable).
    """
    pred = (logits > 0).flatten(1)
    target = (targets > 0).flatten(1)
    intersection = (pred & target).sum(1).to(logits.dtype)
    union = (pred | target).sum(1).to(logits.dtype)
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def sam2_loss(
    multimask_logits: Tensor,
    pred_iou: Tensor,
    object_score_logits: Tensor,
    targets: Tensor,
    weights: LossWeights = LossWeights(),
) -> LossOutput:
    """SAM 2's loss over ``N`` items (objects x frames flattened).

    ``multimask_logits`` ``[N, M, H, W]`` (``M`` = 1 or 3 candidates), ``pred_iou`` ``[N, M]``,
    ``object_score_logits`` ``[N, 1]``, ``targets`` ``[N, H, W]`` bool/float at the logits'
    resolution. Mask and IoU losses are averaged over the items whose target is non-empty (0 when
    there are none); the object-score loss over all ``N`` items.
    """
    n, m, h, w = multimask_logits.shape
    if targets.shape != (n, h, w):
        raise ValueError(f"targets: expected shape {(n, h, w)}, got {tuple(targets.shape)}")
    if pred_iou.shape != (n, m):
        raise ValueError(f"pred_iou: expected shape {(n, m)}, got {tuple(pred_iou.shape)}")
    if object_score_logits.shape != (n, 1):
        raise ValueError(f"object_score_logits: expected shape {(n, 1)}, got {tuple(object_score_logits.shape)}")

    target = (targets > 0).to(multimask_logits.dtype)  # [N, H, W]
    present = target.flatten(1).amax(1)  # [N] 1.0 where the object is in the frame
    num_present = present.sum().clamp(min=1)

    flat_logits = multimask_logits.reshape(n * m, h, w)
    flat_target = target[:, None].expand(n, m, h, w).reshape(n * m, h, w)
    focal = sigmoid_focal_loss(flat_logits, flat_target).view(n, m)  # [N, M]
    dice = dice_loss(flat_logits, flat_target).view(n, m)  # [N, M]
    iou_target = actual_iou(flat_logits, flat_target).view(n, m)  # [N, M]
    iou = (pred_iou - iou_target).abs().mean(1)  # [N], every candidate supervised

    # Mask losses only on the best candidate (the selection itself carries no gradient).
    best = (focal * weights.focal + dice * weights.dice).detach().argmin(1, keepdim=True)  # [N, 1]
    focal = focal.gather(1, best).squeeze(1)  # [N]
    dice = dice.gather(1, best).squeeze(1)  # [N]

    focal_mean = (focal * present).sum() / num_present
    dice_mean = (dice * present).sum() / num_present
    iou_mean = (iou * present).sum() / num_present
    object_score = F.binary_cross_entropy_with_logits(object_score_logits.squeeze(1), present)

    total = (
        weights.focal * focal_mean
        + weights.dice * dice_mean
        + weights.iou * iou_mean
        + weights.object_score * object_score
    )
    return LossOutput(total=total, focal=focal_mean, dice=dice_mean, iou=iou_mean, object_score=object_score)
