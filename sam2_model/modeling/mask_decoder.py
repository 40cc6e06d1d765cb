"""SAM 2's mask decoder: output tokens (object score, IoU, 1+3 masks) and prompt tokens go
through the two-way transformer; masks come from hypernetwork MLPs applied to upscaled
image features that also take the stride-4 and stride-8 backbone features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .common import MLP, LayerNorm2d
from .two_way_transformer import TwoWayTransformer

__all__ = ["DecoderOutput", "MaskDecoder", "stability_scores"]


@dataclass
class DecoderOutput:
    """What the decoder predicts for a batch of B prompts (M = 3 or 1 masks each)."""

    masks: Tensor  # [B, M, 4h, 4w] mask logits
    iou: Tensor  # [B, M] predicted IoU of each mask
    tokens: Tensor  # [B, M or 1, C] mask tokens the object pointer can be taken from
    object_score_logits: Tensor  # [B, 1] logit that the object is visible


def stability_scores(mask_logits: Tensor, delta: float) -> Tensor:
    """IoU of the masks thresholded at ``+delta`` and ``-delta``: ``[..., H, W] -> [...]``."""
    flat = mask_logits.flatten(-2)
    inter = torch.sum(flat > delta, dim=-1).float()
    union = torch.sum(flat > -delta, dim=-1).float()
    return torch.where(union > 0, inter / union, 1.0)


class MaskDecoder(nn.Module):
    """Predicts masks, their IoU and the object score from image and prompt embeddings.

    Args:
        transformer_dim: token and feature width.
        transformer: the two-way transformer.
        num_multimask_outputs: candidate masks for ambiguous prompts.
        iou_head_depth, iou_head_hidden_dim: the IoU MLP.
        stability_delta, stability_thresh: single-mask output falls back to the best
            candidate when its stability score is below the threshold (inference only).
        use_multimask_token_for_obj_ptr: with multimask output, return the candidates'
            tokens (else always the single-mask token).
    """

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        stability_delta: float = 0.05,
        stability_thresh: float = 0.98,
        use_multimask_token_for_obj_ptr: bool = True,
    ) -> None:
        super().__init__()
        c = transformer_dim
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.stability_delta = stability_delta
        self.stability_thresh = stability_thresh
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.obj_score_token = nn.Embedding(1, c)
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        # 1x1 projections of the stride-4 and stride-8 backbone features (applied once per
        # image by the model, see SAM2Model.encode_image)
        self.conv_s0 = nn.Conv2d(c, c // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(c, c // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(c, c, c // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(
            c, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth, sigmoid_output=True
        )
        self.pred_obj_score_head = MLP(c, c, 1, 3)

    def predict_all(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        high_res_features: tuple[Tensor, Tensor],
        repeat_image: bool = False,
    ) -> DecoderOutput:
        """All ``1 + num_multimask_outputs`` masks for every prompt.

        Args:
            image_embeddings: ``[B, C, h, w]`` (or ``[1, C, h, w]`` with ``repeat_image``).
            image_pe: ``[1, C, h, w]``.
            sparse_prompt_embeddings: ``[B, N, C]``.
            dense_prompt_embeddings: ``[B, C, h, w]``.
            high_res_features: projected stride-4 ``[B, C/8, 4h, 4w]`` and stride-8
                ``[B, C/4, 2h, 2w]`` features.
        """
        b = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat((self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight))
        tokens = torch.cat((output_tokens[None].expand(b, -1, -1), sparse_prompt_embeddings), dim=1)
        src = torch.repeat_interleave(image_embeddings, b, dim=0) if repeat_image else image_embeddings
        src = src + dense_prompt_embeddings
        pos_src = torch.repeat_interleave(image_pe, b, dim=0)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        score_token, iou_token = hs[:, 0], hs[:, 1]
        mask_tokens = hs[:, 2 : 2 + self.num_mask_tokens]

        src = src.transpose(1, 2).reshape(b, c, h, w)  # B(HW)C -> BCHW
        feat_s0, feat_s1 = high_res_features
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        up = act1(ln1(dc1(src) + feat_s1))
        up = act2(dc2(up) + feat_s0)  # [B, C/8, 4h, 4w]

        hyper_in = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # [B, M, C/8]
        _, cu, hu, wu = up.shape
        masks = (hyper_in @ up.reshape(b, cu, hu * wu)).reshape(b, -1, hu, wu)
        return DecoderOutput(
            masks=masks,
            iou=self.iou_prediction_head(iou_token),
            tokens=mask_tokens,
            object_score_logits=self.pred_obj_score_head(score_token),
        )

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
        high_res_features: tuple[Tensor, Tensor],
        repeat_image: bool = False,
    ) -> DecoderOutput:
        """Masks for every prompt: the 3 candidates, or the single mask (``M = 1``).

        Same arguments as :meth:`predict_all`.
        """
        out = self.predict_all(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            high_res_features,
            repeat_image,
        )
        if multimask_output:
            masks, iou = out.masks[:, 1:], out.iou[:, 1:]
        elif not self.training:
            masks, iou = self._stable_single_mask(out.masks, out.iou)
        else:
            masks, iou = out.masks[:, :1], out.iou[:, :1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            tokens = out.tokens[:, 1:]
        else:
            tokens = out.tokens[:, :1]  # the single-mask token, also when a candidate is used
        return DecoderOutput(masks, iou, tokens, out.object_score_logits)

    def _stable_single_mask(self, masks: Tensor, iou: Tensor) -> tuple[Tensor, Tensor]:
        """Token 0's mask, or the best candidate (by IoU) when token 0's is unstable."""
        batch = torch.arange(masks.shape[0], device=masks.device)
        best = torch.argmax(iou[:, 1:], dim=-1) + 1
        best_masks, best_iou = masks[batch, best][:, None], iou[batch, best][:, None]
        single_masks, single_iou = masks[:, :1], iou[:, :1]
        stable = stability_scores(single_masks, self.stability_delta) >= self.stability_thresh  # [B, 1]
        return (
            torch.where(stable[..., None, None], single_masks, best_masks),
            torch.where(stable, single_iou, best_iou),
        )
