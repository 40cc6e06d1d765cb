"""The SAM 2 network: image encoder, prompt/mask heads, memory encoder, memory attention and
object pointers, with the state-dict layout of the official checkpoints.

This module holds the per-frame building steps; which memories a frame attends to is the
tracker's business (``sam2_model.tracker``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import SAM2Config
from .common import MLP, sine_position_encoding_1d
from .hiera import Hiera
from .image_encoder import FpnNeck, ImageEncoder
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .prompt_encoder import LABEL_PAD, PromptEncoder
from .two_way_transformer import TwoWayTransformer

__all__ = ["NO_OBJ_SCORE", "HeadsOutput", "ImageFeatures", "SAM2Model"]

# Mask logit given to every pixel of an object predicted not to be visible.
NO_OBJ_SCORE = -1024.0
# Logits (and object score) a mask prompt is turned into: +10 inside, -10 outside.
MASK_PROMPT_SCALE, MASK_PROMPT_BIAS = 20.0, -10.0


@dataclass
class ImageFeatures:
    """What one frame's image encoding provides to the heads and the memory.

    ``h = w = image_size / 16``; ``B`` images (or one image expanded to ``B`` objects).
    """

    features: Tensor  # [B, C, h, w] stride-16 features
    pos: Tensor  # [B, C, h, w] their sine position encoding
    high_res: tuple[Tensor, Tensor]  # projected stride-4 [B, C/8, 4h, 4w], stride-8 [B, C/4, 2h, 2w]

    def expand(self, batch: int) -> ImageFeatures:
        """One image's features viewed ``batch`` times (for a batch of objects): no copy."""

        def exp(t: Tensor) -> Tensor:
            return t.expand(batch, *t.shape[1:])

        return ImageFeatures(exp(self.features), exp(self.pos), (exp(self.high_res[0]), exp(self.high_res[1])))

    def select(self, index: int) -> ImageFeatures:
        """Image ``index`` of a batch, as a batch of one (views, no copy)."""

        def one(t: Tensor) -> Tensor:
            return t[index : index + 1]  # [B, ...] -> [1, ...]

        return ImageFeatures(one(self.features), one(self.pos), (one(self.high_res[0]), one(self.high_res[1])))

    def to(self, device: torch.device | str) -> ImageFeatures:
        """The same features on another device."""
        return ImageFeatures(
            self.features.to(device),
            self.pos.to(device),
            (self.high_res[0].to(device), self.high_res[1].to(device)),
        )

    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        tensors = (self.features, self.pos, *self.high_res)
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class HeadsOutput:
    """The SAM heads' answer for a batch of B prompts (M = 3 candidates or 1 mask)."""

    multimask_logits: Tensor  # [B, M, 4h, 4w] low-res logits of every returned mask
    multimask_iou: Tensor  # [B, M] their predicted IoU
    best: Tensor  # [B] index (into M) of the mask kept: highest IoU among candidates
    logits: Tensor  # [B, 1, 4h, 4w] low-res logits of the kept mask
    iou: Tensor  # [B] predicted IoU of the kept mask
    obj_ptr: Tensor  # [B, C] object pointer (the "not visible" pointer when occluded)
    object_score_logits: Tensor  # [B, 1] logit that the object is visible


class SAM2Model(nn.Module):
    """SAM 2 / 2.1. Parameter names and shapes are those of the official checkpoints.

    Build it with :func:`sam2_model.build_sam2`; use :class:`sam2_model.SAM2ImagePredictor`
    for single images and :class:`sam2_model.SAM2Tracker` for video.
    """

    def __init__(self, config: SAM2Config) -> None:
        super().__init__()
        self.config = config
        c, d, m = config, config.d_model, config.mem_dim
        emb = config.embedding_size

        trunk = Hiera(c.trunk)
        neck = FpnNeck(d, list(c.trunk.channel_list), c.fpn_top_down_levels)
        self.image_encoder = ImageEncoder(trunk, neck, scalp=1)
        self.memory_attention = MemoryAttention(
            d, m, c.memory_attention_layers, c.memory_attention_ffn_dim, c.memory_attention_dropout, c.rope_theta
        )
        self.memory_encoder = MemoryEncoder(
            d, m, c.mask_downsampler_stride, c.mask_downsampler_total_stride, c.fuser_layers
        )
        self.sam_prompt_encoder = PromptEncoder(d, (emb, emb), (c.image_size, c.image_size), c.mask_in_chans)
        self.sam_mask_decoder = MaskDecoder(
            d,
            TwoWayTransformer(c.decoder_depth, d, c.decoder_heads, c.decoder_mlp_dim),
            num_multimask_outputs=c.num_multimask_outputs,
            iou_head_depth=c.iou_head_depth,
            iou_head_hidden_dim=d,
            stability_delta=c.stability_delta,
            stability_thresh=c.stability_thresh,
            use_multimask_token_for_obj_ptr=c.use_multimask_token_for_obj_ptr,
        )
        # object pointers: projection of the decoder's mask token, temporal encoding
        self.obj_ptr_proj = MLP(d, d, d, 3)
        self.obj_ptr_tpos_proj = nn.Linear(d, m) if c.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        # turns a binary mask prompt into a low-res mask input for the pointer
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(c.num_maskmem, 1, 1, m))  # per memory slot
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))  # added on a first prompted frame
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, d))  # (kept for the checkpoint layout)
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, d))  # pointer of a frame without the object
        if c.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, m))  # added to occluded memories
        else:
            self.register_parameter("no_obj_embed_spatial", None)
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)
        if self.no_obj_embed_spatial is not None:
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.no_obj_ptr.device

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def forward(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(
            "SAM2Model has no single forward pass: use encode_image / forward_heads / "
            "condition_on_memory / encode_memory, or SAM2ImagePredictor / SAM2Tracker"
        )

    # ------------------------------------------------------------------ image
    def encode_image(self, images: Tensor) -> ImageFeatures:
        """Normalised images ``[B, 3, S, S]`` -> :class:`ImageFeatures`."""
        out = self.image_encoder(images)
        dec = self.sam_mask_decoder
        high_res = (dec.conv_s0(out.fpn[0]), dec.conv_s1(out.fpn[1]))
        return ImageFeatures(features=out.fpn[-1], pos=out.pos[-1], high_res=high_res)

    # ------------------------------------------------------------------ SAM heads
    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """Whether the heads return 3 candidates (few clicks; a box counts as 2 points)."""
        c = self.config
        if not (is_init_cond_frame or c.multimask_output_for_tracking):
            return False
        return c.multimask_min_pt_num <= num_points <= c.multimask_max_pt_num

    def forward_heads(
        self,
        features: Tensor,
        high_res: tuple[Tensor, Tensor],
        points: Tensor | None = None,
        labels: Tensor | None = None,
        mask_inputs: Tensor | None = None,
        multimask: bool = False,
    ) -> HeadsOutput:
        """Prompt encoder + mask decoder + object pointer.

        Args:
            features: ``[B, C, h, w]`` (memory-conditioned or not).
            high_res: the projected high-resolution features (see :class:`ImageFeatures`).
            points: ``[B, P, 2]`` in model-input pixels (x, y); box corners are points
                labelled 2 and 3. ``None``: no points.
            labels: ``[B, P]`` point labels (1 positive, 0 negative, 2/3 box, -1 padding).
            mask_inputs: ``[B, 1, H', W']`` mask logits given as a dense prompt.
            multimask: return 3 candidates (and keep the best) instead of one mask.
        """
        b = features.shape[0]
        if points is None:
            points = features.new_zeros(b, 1, 2, dtype=torch.float32)
            labels = torch.full((b, 1), LABEL_PAD, dtype=torch.int32, device=features.device)
        elif labels is None:
            raise ValueError("labels are required with points")
        pe = self.sam_prompt_encoder
        if mask_inputs is not None and tuple(mask_inputs.shape[-2:]) != pe.mask_input_size:
            mask_inputs = F.interpolate(
                mask_inputs.float(), size=pe.mask_input_size, mode="bilinear", align_corners=False, antialias=True
            )
        sparse, dense = pe((points, labels), None, mask_inputs)
        dec = self.sam_mask_decoder(features, pe.dense_pe(), sparse, dense, multimask, high_res)

        visible = dec.object_score_logits > 0  # [B, 1]
        masks = torch.where(visible[:, :, None, None], dec.masks, NO_OBJ_SCORE).float()
        batch = torch.arange(b, device=masks.device)
        best = torch.argmax(dec.iou, dim=-1) if multimask else torch.zeros(b, dtype=torch.long, device=masks.device)
        token = dec.tokens[batch, best] if dec.tokens.shape[1] > 1 else dec.tokens[:, 0]
        obj_ptr = self._gate_pointer(self.obj_ptr_proj(token), visible)
        return HeadsOutput(
            multimask_logits=masks,
            multimask_iou=dec.iou,
            best=best,
            logits=masks[batch, best][:, None],
            iou=dec.iou[batch, best],
            obj_ptr=obj_ptr,
            object_score_logits=dec.object_score_logits,
        )

    def _gate_pointer(self, obj_ptr: Tensor, visible: Tensor) -> Tensor:
        """Replace the pointer of objects that are not visible by the learned one."""
        lam = visible.to(obj_ptr.dtype)  # [B, 1]
        return lam * obj_ptr + (1 - lam) * self.no_obj_ptr

    def mask_as_output(self, features: Tensor, high_res: tuple[Tensor, Tensor], masks: Tensor) -> HeadsOutput:
        """A mask prompt taken as the answer: logits +/-10, object score +/-10, and a
        pointer from the decoder run on the downsampled mask.

        Args:
            features: ``[B, C, h, w]`` (not memory-conditioned).
            masks: binary masks at model-input size ``[B, 1, S, S]``.
        """
        masks = masks.float()
        high = masks * MASK_PROMPT_SCALE + MASK_PROMPT_BIAS
        size = (high.shape[-2] // 4, high.shape[-1] // 4)
        low = F.interpolate(high, size=size, mode="bilinear", align_corners=False, antialias=True)
        heads = self.forward_heads(features, high_res, mask_inputs=self.mask_downsample(masks))
        visible = torch.any(masks.flatten(1) > 0.0, dim=1)[:, None]  # [B, 1]
        lam = visible.float()
        ones = masks.new_ones(masks.shape[0], 1)
        return HeadsOutput(
            multimask_logits=low,
            multimask_iou=ones,
            best=torch.zeros(masks.shape[0], dtype=torch.long, device=masks.device),
            logits=low,
            iou=ones[:, 0],
            obj_ptr=self._gate_pointer(heads.obj_ptr, visible),
            object_score_logits=MASK_PROMPT_SCALE * lam + MASK_PROMPT_BIAS,
        )

    # ------------------------------------------------------------------ memory
    def no_memory_features(self, features: Tensor) -> Tensor:
        """Features of an object's first prompted frame: ``+ no_mem_embed``, ``[B, C, h, w]``."""
        return features + self.no_mem_embed.reshape(1, -1, 1, 1)

    def condition_on_memory(
        self,
        features: Tensor,
        pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        num_obj_ptr_tokens: int,
    ) -> Tensor:
        """Memory attention: ``[B, C, h, w]`` features + memory tokens ``[B, M, C_mem]``
        (spatial memories then pointer tokens) -> ``[B, C, h, w]``."""
        b, c, h, w = features.shape
        curr = features.flatten(2).transpose(1, 2)  # BCHW -> B(HW)C
        curr_pos = pos.flatten(2).transpose(1, 2)  # BCHW -> B(HW)C
        out = self.memory_attention(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens)
        return out.transpose(1, 2).reshape(b, c, h, w)  # B(HW)C -> BCHW

    def encode_memory(
        self,
        features: Tensor,
        mask_logits: Tensor,
        object_score_logits: Tensor,
        binarize: bool,
    ) -> tuple[Tensor, Tensor]:
        """Encode a frame's prediction into a spatial memory.

        Args:
            features: raw (not memory-conditioned) features ``[B, C, h, w]``.
            mask_logits: high-resolution mask logits ``[B, 1, S, S]``.
            object_score_logits: ``[B, 1]``; occluded objects get ``no_obj_embed_spatial``.
            binarize: threshold the mask instead of a sigmoid (frames with clicks).
        Returns:
            memory ``[B, C_mem, h, w]`` and its position encoding ``[B, C_mem, h, w]``.
        """
        c = self.config
        mask = (mask_logits > 0).float() if binarize else torch.sigmoid(mask_logits)
        if c.sigmoid_scale_for_mem_enc != 1.0:
            mask = mask * c.sigmoid_scale_for_mem_enc
        if c.sigmoid_bias_for_mem_enc != 0.0:
            mask = mask + c.sigmoid_bias_for_mem_enc
        memory, pos = self.memory_encoder(features, mask, skip_mask_sigmoid=True)
        if self.no_obj_embed_spatial is not None:
            occluded = 1.0 - (object_score_logits > 0).to(memory.dtype)  # [B, 1]
            memory = memory + occluded[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return memory, pos

    def memory_slot_encoding(self, t_pos: int) -> Tensor:
        """Temporal encoding of memory slot ``t_pos`` (0: prompted frames, 1..6: frames
        t-6..t-1): ``[1, 1, C_mem]``."""
        return self.maskmem_tpos_enc[self.config.num_maskmem - t_pos - 1].reshape(1, 1, -1)

    def spatial_memory_tokens(self, memory: Tensor, pos: Tensor, t_pos: int) -> tuple[Tensor, Tensor]:
        """One frame's memory as tokens: ``[B, C_mem, h, w]`` -> ``[B, hw, C_mem]`` (x2)."""
        tokens = memory.flatten(2).transpose(1, 2)  # BCHW -> B(HW)C
        tokens_pos = pos.flatten(2).transpose(1, 2) + self.memory_slot_encoding(t_pos)
        return tokens, tokens_pos

    def pointer_tokens(self, pointers: Tensor, temporal_offsets: Tensor, max_pointers: int) -> tuple[Tensor, Tensor]:
        """Object pointers as memory tokens, each split into ``C / C_mem`` tokens.

        Args:
            pointers: ``[B, K, C]``.
            temporal_offsets: ``[K]`` or ``[B, K]`` frames between each pointer's frame and
                the current one.
            max_pointers: the most pointers attended to (offsets are divided by it - 1).
        Returns:
            tokens and their encoding, ``[B, K * C / C_mem, C_mem]`` each.
        """
        c = self.config
        b, k, d = pointers.shape
        split = d // c.mem_dim
        if c.add_tpos_enc_to_obj_ptrs:
            offsets = temporal_offsets.to(pointers.device).expand(b, k)
            norm = offsets.reshape(-1) / max(max_pointers - 1, 1)
            tpos_dim = d if c.proj_tpos_enc_in_obj_ptrs else c.mem_dim
            pos = self.obj_ptr_tpos_proj(sine_position_encoding_1d(norm, tpos_dim))  # [B*K, C_mem]
            pos = pos.reshape(b, k, c.mem_dim)
        else:
            pos = pointers.new_zeros(b, k, c.mem_dim)
        tokens = pointers.reshape(b, k * split, c.mem_dim)  # B,K,(s Cm) -> B,(K s),Cm
        return tokens, pos.repeat_interleave(split, dim=1)
