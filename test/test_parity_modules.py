"""Our components against the official ones, with the same weights loaded from a checkpoint
in the official format: fp32 outputs within 1e-4 of the reference's max magnitude."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL, object_score_bias, rel_err

pytestmark = pytest.mark.parity


def _image(pair, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, pair.image_size, pair.image_size, generator=gen)


@torch.inference_mode()
def test_image_encoder_levels_and_position_encodings(pair):
    x = _image(pair)
    ref = pair.ref.image_encoder(x)
    ours = pair.ours.image_encoder(x)
    assert len(ours.fpn) == len(ref["backbone_fpn"]) == 3
    for level, (a, b) in enumerate(zip(ours.fpn, ref["backbone_fpn"])):
        assert rel_err(a, b) <= TOL, f"FPN level {level}"
        assert a.shape[-1] == pair.image_size // 4 // 2**level
    for a, b in zip(ours.pos, ref["vision_pos_enc"]):
        assert rel_err(a, b) <= TOL
    # the projected high-resolution features the decoder uses
    ref_out = pair.ref.forward_image(x)
    feats = pair.ours.encode_image(x)
    assert rel_err(feats.high_res[0], ref_out["backbone_fpn"][0]) <= TOL
    assert rel_err(feats.high_res[1], ref_out["backbone_fpn"][1]) <= TOL
    assert rel_err(feats.features, ref_out["backbone_fpn"][2]) <= TOL
    assert rel_err(feats.pos, ref_out["vision_pos_enc"][2]) <= TOL


def _prompts(pair):
    s = pair.image_size
    gen = torch.Generator().manual_seed(3)
    pts = torch.rand(2, 3, 2, generator=gen) * s
    lab = torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.int32)
    box = torch.tensor([[10.0, 20.0, 150.0, 200.0], [40.0, 30.0, 90.0, 180.0]]) * s / 256
    mask = torch.randn(2, 1, 4 * pair.ours.config.embedding_size, 4 * pair.ours.config.embedding_size, generator=gen)
    return pts, lab, box, mask


@pytest.mark.parametrize("kind", ["points", "box", "points+box", "mask", "points+mask"])
@torch.inference_mode()
def test_prompt_encoder(pair, kind):
    pts, lab, box, mask = _prompts(pair)
    args = {
        "points": ((pts, lab), None, None),
        "box": (None, box, None),
        "points+box": ((pts, lab), box, None),
        "mask": (None, None, mask),
        "points+mask": ((pts, lab), None, mask),
    }[kind]
    ref_sparse, ref_dense = pair.ref.sam_prompt_encoder(*args)
    sparse, dense = pair.ours.sam_prompt_encoder(*args)
    assert rel_err(sparse, ref_sparse) <= TOL
    assert rel_err(dense, ref_dense) <= TOL
    assert rel_err(pair.ours.sam_prompt_encoder.dense_pe(), pair.ref.sam_prompt_encoder.get_dense_pe()) <= TOL


@pytest.mark.parametrize("multimask", [False, True])
@torch.inference_mode()
def test_mask_decoder(pair, multimask):
    x = _image(pair, seed=1)
    ref_feats = pair.ref.forward_image(x)["backbone_fpn"]
    pts, lab, _, _ = _prompts(pair)
    sparse, dense = pair.ref.sam_prompt_encoder((pts, lab), None, None)
    image = ref_feats[2].expand(2, -1, -1, -1)
    high = [f.expand(2, -1, -1, -1) for f in ref_feats[:2]]
    pe = pair.ref.sam_prompt_encoder.get_dense_pe()
    masks, iou, tokens, score = pair.ref.sam_mask_decoder(image, pe, sparse, dense, multimask, False, high)
    out = pair.ours.sam_mask_decoder(image, pe, sparse, dense, multimask, (high[0], high[1]))
    assert out.masks.shape[1] == (3 if multimask else 1)
    for a, b in ((out.masks, masks), (out.iou, iou), (out.tokens, tokens), (out.object_score_logits, score)):
        assert rel_err(a, b) <= TOL


def _encoded(pair, seed: int = 2):
    x = _image(pair, seed)
    ref_bb = pair.ref.forward_image(x)
    feats = pair.ours.encode_image(x)
    return ref_bb, feats


HEAD_PROMPTS = ["click", "clicks", "box", "box+click", "mask", "click+mask"]


def _head_inputs(pair, kind: str):
    s = pair.image_size
    click = torch.tensor([[[0.4 * s, 0.55 * s]]])
    clicks = torch.tensor([[[0.4 * s, 0.55 * s], [0.7 * s, 0.2 * s], [0.1 * s, 0.9 * s]]])
    box = torch.tensor([[[0.2 * s, 0.3 * s], [0.6 * s, 0.8 * s]]])
    gen = torch.Generator().manual_seed(5)
    low = 4 * pair.ours.config.embedding_size
    mask = torch.randn(1, 1, low, low, generator=gen) * 8
    table = {
        "click": (click, torch.tensor([[1]], dtype=torch.int32), None),
        "clicks": (clicks, torch.tensor([[1, 0, 1]], dtype=torch.int32), None),
        "box": (box, torch.tensor([[2, 3]], dtype=torch.int32), None),
        "box+click": (torch.cat((box, click), 1), torch.tensor([[2, 3, 1]], dtype=torch.int32), None),
        "mask": (None, None, mask),
        "click+mask": (click, torch.tensor([[0]], dtype=torch.int32), mask),
    }
    return table[kind]


@pytest.mark.parametrize("visible", [True, False])
@pytest.mark.parametrize("multimask", [False, True])
@pytest.mark.parametrize("kind", HEAD_PROMPTS)
@torch.inference_mode()
def test_sam_heads_with_pointer(pair, kind, multimask, visible):
    ref_bb, feats = _encoded(pair)
    pix = pair.ours.no_memory_features(feats.features)
    ref_pix = ref_bb["backbone_fpn"][2] + pair.ref.no_mem_embed.reshape(1, -1, 1, 1)
    assert rel_err(pix, ref_pix) <= TOL
    points, labels, mask = _head_inputs(pair, kind)
    point_inputs = None if points is None else {"point_coords": points, "point_labels": labels}
    with object_score_bias(pair, 20.0 if visible else -20.0):
        ref = pair.ref._forward_sam_heads(ref_pix, point_inputs, mask, ref_bb["backbone_fpn"][:2], multimask)
        out = pair.ours.forward_heads(pix, feats.high_res, points, labels, mask, multimask)
    ref_multi, _, ref_iou, ref_low, _, ref_ptr, ref_score = ref
    assert bool((out.object_score_logits > 0).all()) == visible
    assert rel_err(out.object_score_logits, ref_score) <= TOL
    assert rel_err(out.multimask_logits, ref_multi) <= TOL
    assert rel_err(out.multimask_iou, ref_iou) <= TOL
    assert rel_err(out.logits, ref_low) <= TOL
    assert rel_err(out.obj_ptr, ref_ptr) <= TOL
    if visible:  # a real mask, not the constant "no object" logits
        assert float(out.logits.std()) > 0.01
    else:
        assert torch.all(out.logits == -1024.0)


@pytest.mark.parametrize("empty", [False, True])
@torch.inference_mode()
def test_mask_prompt_taken_as_output(pair, empty):
    ref_bb, feats = _encoded(pair)
    s = pair.image_size
    mask = torch.zeros(1, 1, s, s)
    if not empty:
        mask[..., s // 4 : s // 2, s // 3 : s - 10] = 1.0
    ref = pair.ref._use_mask_as_output(ref_bb["backbone_fpn"][2], ref_bb["backbone_fpn"][:2], mask)
    out = pair.ours.mask_as_output(feats.features, feats.high_res, mask)
    ref_low, _, ref_iou, _, _, ref_ptr, ref_score = ref
    assert rel_err(out.logits, ref_low) <= TOL
    assert rel_err(out.obj_ptr, ref_ptr) <= TOL
    assert torch.equal(out.object_score_logits, ref_score)
    assert torch.equal(out.iou, ref_iou[:, 0])
    assert float(out.object_score_logits) == (-10.0 if empty else 10.0)


@pytest.mark.parametrize("binarize", [False, True])
@pytest.mark.parametrize("visible", [True, False])
@torch.inference_mode()
def test_memory_encoder(pair, binarize, visible):
    ref_bb, feats = _encoded(pair)
    s = pair.image_size
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(1, 1, s, s, generator=gen) * 6
    score = torch.tensor([[2.5 if visible else -1.5]])
    # the module alone
    masks = torch.sigmoid(logits) * 20 - 10
    ref_mod = pair.ref.memory_encoder(ref_bb["backbone_fpn"][2], masks, skip_mask_sigmoid=True)
    mem, pos = pair.ours.memory_encoder(feats.features, masks, skip_mask_sigmoid=True)
    assert rel_err(mem, ref_mod["vision_features"]) <= TOL
    assert rel_err(pos, ref_mod["vision_pos_enc"][0]) <= TOL
    # with the mask scaling and the occlusion embedding
    vision = [f.flatten(2).permute(2, 0, 1) for f in ref_bb["backbone_fpn"]]  # BCHW -> (HW)BC
    sizes = [tuple(f.shape[-2:]) for f in ref_bb["backbone_fpn"]]
    assert pair.ref.binarize_mask_from_pts_for_mem_enc  # the video predictor's setting
    ref_mem, ref_pos = pair.ref._encode_new_memory(vision, sizes, logits, score, is_mask_from_pts=binarize)
    mem, pos = pair.ours.encode_memory(feats.features, logits, score, binarize=binarize)
    assert rel_err(mem, ref_mem) <= TOL
    assert rel_err(pos, ref_pos[0]) <= TOL


@pytest.mark.parametrize("num_ptr_tokens", [0, 16])
@torch.inference_mode()
def test_memory_attention(pair, num_ptr_tokens):
    ref_bb, feats = _encoded(pair)
    c = pair.ours.config
    hw = c.embedding_size**2
    gen = torch.Generator().manual_seed(11)
    n_mem = 3 * hw + num_ptr_tokens
    memory = 4 * torch.randn(n_mem, 1, c.mem_dim, generator=gen)  # peaky attention: keys matter
    memory_pos = torch.randn(n_mem, 1, c.mem_dim, generator=gen)
    curr = ref_bb["backbone_fpn"][2].flatten(2).permute(2, 0, 1)  # BCHW -> (HW)BC
    curr_pos = ref_bb["vision_pos_enc"][2].flatten(2).permute(2, 0, 1)
    ref = pair.ref.memory_attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=num_ptr_tokens)
    ours = pair.ours.memory_attention(
        curr.transpose(0, 1),
        curr_pos.transpose(0, 1),
        memory.transpose(0, 1),
        memory_pos.transpose(0, 1),
        num_ptr_tokens,
    )
    assert rel_err(ours.transpose(0, 1), ref) <= TOL
    # the model-level wrapper on [B, C, h, w] maps
    cond = pair.ours.condition_on_memory(
        feats.features, feats.pos, memory.transpose(0, 1), memory_pos.transpose(0, 1), num_ptr_tokens
    )
    side = c.embedding_size
    assert rel_err(cond, ref.permute(1, 2, 0).reshape(1, c.d_model, side, side)) <= TOL


@torch.inference_mode()
def test_pointer_temporal_encoding(pair):
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    gen = torch.Generator().manual_seed(13)
    ptrs = torch.randn(2, 5, pair.ours.config.d_model, generator=gen)
    offsets = torch.tensor([4, 1, 2, 3, 9])
    tokens, pos = pair.ours.pointer_tokens(ptrs, offsets, max_pointers=16)
    ref_pos = pair.ref.obj_ptr_tpos_proj(get_1d_sine_pe(offsets / 15, dim=pair.ours.config.d_model))
    split = pair.ours.config.d_model // pair.ours.config.mem_dim
    assert tokens.shape == (2, 5 * split, pair.ours.config.mem_dim)
    assert rel_err(pos[0], ref_pos.repeat_interleave(split, dim=0)) <= TOL
    # the official split of a pointer into tokens: (K, B, C) -> (K*split, B, C_mem)
    ref_tokens = ptrs.transpose(0, 1).reshape(5, 2, split, -1).permute(0, 2, 1, 3).flatten(0, 1)
    assert torch.equal(tokens, ref_tokens.transpose(0, 1))
