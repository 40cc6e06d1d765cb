"""Single-image prompting: the first-frame path of the tracker.

An object's first prompted frame is segmented without memory (features + ``no_mem_embed``),
with the official video predictor's prompt handling: a box becomes two corner points placed
before the clicks, 0 or 1 click gives 3 candidate masks (the best by predicted IoU is kept),
a mask prompt is taken as the answer, and clicks given with a mask refine that mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from .modeling.sam2 import HeadsOutput, ImageFeatures, SAM2Model
from .prompts import Prompt, validate_image, validate_prompt
from .transforms import logits_to_image, mask_to_model, points_to_model, preprocess_image

__all__ = ["ImagePrediction", "SAM2ImagePredictor", "run_prompt"]

# Previous logits fed back as a mask prompt are clamped to this magnitude.
PREV_LOGITS_CLAMP = 32.0


@dataclass
class ImagePrediction:
    """Masks for one prompt on one image (M = 3 candidates or 1 mask)."""

    masks: np.ndarray  # [M, H, W] bool at the image's own size
    iou: np.ndarray  # [M] float32 predicted IoU of each mask
    logits: Tensor  # [M, S/4, S/4] low-res mask logits (256x256 for S = 1024), on CPU
    object_score: float  # logit that the object is visible (> 0: visible)
    best: int  # index of the mask the tracker would keep (highest predicted IoU)

    @property
    def mask(self) -> np.ndarray:
        """The kept mask ``[H, W]``."""
        return self.masks[self.best]


def run_prompt(
    model: SAM2Model,
    feats: ImageFeatures,
    prompt: Prompt,
    image_hw: tuple[int, int],
    is_init_cond_frame: bool = True,
    pix_feat: Tensor | None = None,
    prev_logits: Tensor | None = None,
    multimask: bool | None = None,
) -> HeadsOutput:
    """Run one object's prompt on one frame's features (batch 1).

    Args:
        feats: the frame's features (batch 1).
        prompt: a validated prompt.
        image_hw: the frame's original ``(H, W)`` the prompt's pixels refer to.
        is_init_cond_frame: the object's first frame (decides multimask with 0-1 clicks).
        pix_feat: features to decode from; default: ``feats.features + no_mem_embed``.
        prev_logits: ``[1, 1, S/4, S/4]`` previous logits given with clicks (a correction).
        multimask: force single/multi-mask output; ``None`` follows the official rule.
    """
    size, device = model.image_size, feats.features.device
    if pix_feat is None:
        pix_feat = model.no_memory_features(feats.features)
    mask_out = None
    if prompt.mask is not None:
        mask_out = model.mask_as_output(feats.features, feats.high_res, mask_to_model(prompt.mask, size, device))
        if not prompt.has_points:
            return mask_out
        prev_logits = mask_out.logits  # clicks on top of a mask refine it
    coords, labels = prompt.point_inputs()
    points = points_to_model(coords, image_hw, size, device)[None]  # [1, P, 2]
    labels_t = torch.as_tensor(labels, device=device)[None]  # [1, P]
    if multimask is None:
        multimask = model.use_multimask(is_init_cond_frame, prompt.num_points)
    mask_inputs = None if prev_logits is None else prev_logits.clamp(-PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP)
    return model.forward_heads(pix_feat, feats.high_res, points, labels_t, mask_inputs, multimask)


class SAM2ImagePredictor:
    """Prompt SAM 2 on single images.

    Example::

        predictor = SAM2ImagePredictor(build_sam2("sam2.1_hiera_tiny", "sam2.1_hiera_tiny.pt"))
        predictor.set_image(rgb)                       # HxWx3 uint8
        result = predictor.predict(points=[[320, 240]], labels=[1])
        mask = result.mask                             # HxW bool
    """

    def __init__(self, model: SAM2Model) -> None:
        self.model = model
        self._features: ImageFeatures | None = None
        self._image_hw: tuple[int, int] | None = None

    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> None:
        """Encode an RGB ``[H, W, 3]`` uint8 image (kept until the next call)."""
        image = validate_image(image)
        x = preprocess_image(image, self.model.image_size, self.model.device)
        self._features = self.model.encode_image(x.to(self.model.no_obj_ptr.dtype))
        self._image_hw = (image.shape[0], image.shape[1])

    @torch.inference_mode()
    def predict(
        self,
        points: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        multimask_output: bool | None = None,
        mask_logits: Tensor | None = None,
    ) -> ImagePrediction:
        """Segment the object a prompt points at.

        Args:
            points: clicks ``[N, 2]`` (x, y) in image pixels.
            labels: ``[N]``, 1 on the object, 0 not.
            box: ``(x0, y0, x1, y1)``, the first and last pixel covered (inclusive, inside the image).
            mask: ``[H, W]`` mask of the object (non-zero inside).
            multimask_output: 3 candidates or 1 mask; ``None``: 3 for 0-1 clicks and no box.
            mask_logits: low-res logits of an earlier prediction (``result.logits[best]``) to
                refine with new clicks.
        Returns:
            :class:`ImagePrediction` at the image's size.
        """
        if self._features is None or self._image_hw is None:
            raise RuntimeError("call set_image() before predict()")
        prompt = validate_prompt(self._image_hw, points, labels, box, mask)
        prev = None
        if mask_logits is not None:
            low = self.model.config.low_res_size
            prev = torch.as_tensor(mask_logits, dtype=torch.float32, device=self.model.device).reshape(1, 1, low, low)
        out = run_prompt(
            self.model, self._features, prompt, self._image_hw, prev_logits=prev, multimask=multimask_output
        )
        logits = out.multimask_logits[0]  # [M, h, w]
        masks = logits_to_image(logits[None], self._image_hw)[0] > 0
        return ImagePrediction(
            masks=masks.cpu().numpy(),
            iou=out.multimask_iou[0].float().cpu().numpy(),
            logits=logits.float().cpu(),
            object_score=float(out.object_score_logits[0, 0]),
            best=int(out.best[0]),
        )
