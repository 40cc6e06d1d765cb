"""Fast CPU tests on a tiny random configuration: API behaviour, batching, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import UNIT

from sam2_model import (
    CONFIGS,
    SAM2ImagePredictor,
    SAM2Model,
    config_names,
    get_config,
    validate_prompt,
)
from sam2_model.config import OFFICIAL_CONFIG_NAMES


@pytest.fixture(scope="module")
def model() -> SAM2Model:
    torch.manual_seed(0)
    m = SAM2Model(UNIT).eval()
    with torch.no_grad():  # random, non-degenerate weights everywhere
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(90, 130, 3), dtype=np.uint8)


@pytest.fixture
def predictor(model, image) -> SAM2ImagePredictor:
    p = SAM2ImagePredictor(model)
    p.set_image(image)
    return p


# ---------------------------------------------------------------- configs
def test_registry_has_the_eight_official_models_and_the_demo_one():
    official = sorted(f"{v}_hiera_{s}" for v in ("sam2", "sam2.1") for s in ("tiny", "small", "base_plus", "large"))
    assert sorted(OFFICIAL_CONFIG_NAMES) == official
    assert config_names() == sorted([*official, "sam2_ros_demo"])
    assert CONFIGS["sam2.1_hiera_large"].trunk.window_spec == (8, 4, 16, 8)
    assert CONFIGS["sam2.1_hiera_base_plus"].trunk.window_pos_embed_bkg_size == (14, 14)
    assert not CONFIGS["sam2_hiera_small"].no_obj_embed_spatial
    assert CONFIGS["sam2.1_hiera_small"].trunk.channel_list == (768, 384, 192, 96)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny"),
        ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus"),
        ("sam2_hiera_large.pt", "sam2_hiera_large"),
        ("SAM2.1-Hiera-Small", "sam2.1_hiera_small"),
    ],
)
def test_config_aliases(alias, name):
    assert get_config(alias).name == name


def test_config_image_size_override_and_validation():
    cfg = get_config("sam2.1_hiera_tiny", image_size=512)
    assert cfg.image_size == 512 and cfg.embedding_size == 32 and cfg.low_res_size == 128
    assert CONFIGS["sam2.1_hiera_tiny"].image_size == 1024  # the registry entry is unchanged
    with pytest.raises(ValueError, match="multiple of 32"):
        get_config("sam2.1_hiera_tiny", image_size=500)
    with pytest.raises(ValueError, match="unknown model config"):
        get_config("sam3_hiera_tiny")
    with pytest.raises(AttributeError):
        cfg.image_size = 256  # frozen


# ---------------------------------------------------------------- batching
def _feats(model, n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, UNIT.image_size, UNIT.image_size, generator=gen)
    return model.encode_image(x)


@torch.inference_mode()
def test_heads_batched_equal_one_at_a_time(model):
    feats = _feats(model, 3)
    gen = torch.Generator().manual_seed(1)
    points = torch.rand(3, 2, 2, generator=gen) * UNIT.image_size
    labels = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.int32)
    for multimask in (False, True):
        batched = model.forward_heads(feats.features, feats.high_res, points, labels, None, multimask)
        for i in range(3):
            hr = (feats.high_res[0][i : i + 1], feats.high_res[1][i : i + 1])
            single = model.forward_heads(
                feats.features[i : i + 1], hr, points[i : i + 1], labels[i : i + 1], None, multimask
            )
            torch.testing.assert_close(batched.multimask_logits[i], single.multimask_logits[0], rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(batched.obj_ptr[i], single.obj_ptr[0], rtol=1e-5, atol=1e-5)
            assert int(batched.best[i]) == int(single.best[0])


@torch.inference_mode()
def test_memory_attention_and_encoder_batched_equal_one_at_a_time(model):
    feats = _feats(model, 2, seed=3)
    gen = torch.Generator().manual_seed(4)
    hw = UNIT.embedding_size**2
    memory = torch.randn(2, 2 * hw + 8, UNIT.mem_dim, generator=gen)
    memory_pos = torch.randn(2, 2 * hw + 8, UNIT.mem_dim, generator=gen)
    out = model.condition_on_memory(feats.features, feats.pos, memory, memory_pos, 8)
    logits = torch.randn(2, 1, UNIT.image_size, UNIT.image_size, generator=gen)
    scores = torch.tensor([[1.0], [-1.0]])
    mem, _ = model.encode_memory(feats.features, logits, scores, binarize=False)
    for i in range(2):
        sl = slice(i, i + 1)
        one = model.condition_on_memory(feats.features[sl], feats.pos[sl], memory[sl], memory_pos[sl], 8)
        torch.testing.assert_close(out[i], one[0], rtol=1e-5, atol=1e-5)
        mem_one, _ = model.encode_memory(feats.features[sl], logits[sl], scores[sl], binarize=False)
        torch.testing.assert_close(mem[i], mem_one[0], rtol=1e-5, atol=1e-5)
    # the occluded object's memory carries the no-object embedding, the visible one not
    mem_vis, _ = model.encode_memory(feats.features[1:], logits[1:], torch.tensor([[1.0]]), binarize=False)
    diff = (mem[1] - mem_vis[0]).mean(dim=(1, 2))
    torch.testing.assert_close(diff, model.no_obj_embed_spatial[0], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- image predictor
@pytest.mark.parametrize(
    ("prompt", "n_masks"),
    [
        ({"points": [[40, 30]], "labels": [1]}, 3),
        ({"points": [[40, 30], [100, 70]], "labels": [1, 0]}, 1),
        ({"box": [10, 10, 80, 60]}, 1),
        ({"box": [10, 10, 80, 60], "points": [[40, 30]], "labels": [1]}, 1),
        ({"points": [[40, 30], [100, 70]], "labels": [1, 0], "multimask_output": True}, 3),
    ],
)
def test_predict_shapes_and_multimask_rule(predictor, prompt, n_masks):
    result = predictor.predict(**prompt)
    assert result.masks.shape == (n_masks, 90, 130) and result.masks.dtype == np.bool_
    assert result.logits.shape == (n_masks, 32, 32)
    assert result.iou.shape == (n_masks,) and np.all((result.iou >= 0) & (result.iou <= 1))
    assert 0 <= result.best < n_masks
    if n_masks == 3:  # the kept mask is the one with the highest predicted IoU
        assert result.best == int(np.argmax(result.iou))
    assert result.mask.shape == (90, 130)
    assert result.object_score > 0
    # masks are the upsampled logits thresholded at 0
    up = torch.nn.functional.interpolate(result.logits[None], size=(90, 130), mode="bilinear", align_corners=False)
    assert np.array_equal(result.masks, (up[0] > 0).numpy())


def test_mask_prompt(predictor):
    mask = np.zeros((90, 130), dtype=bool)
    mask[20:60, 30:90] = True
    result = predictor.predict(mask=mask)
    assert result.object_score == 10.0 and result.iou.tolist() == [1.0]
    assert result.mask[40, 60] and not result.mask[5, 5]
    # an empty mask says "not visible"
    assert predictor.predict(mask=np.zeros((90, 130), dtype=np.uint8)).object_score == -10.0


def test_refinement_with_previous_logits_changes_the_answer(predictor):
    first = predictor.predict(points=[[40, 30]], labels=[1])
    again = predictor.predict(points=[[40, 30]], labels=[1])
    assert torch.equal(first.logits, again.logits)  # deterministic
    refined = predictor.predict(points=[[40, 30]], labels=[1], mask_logits=first.logits[first.best])
    assert not torch.allclose(refined.logits, first.logits)


def test_any_image_size(model):
    p = SAM2ImagePredictor(model)
    for hw in [(37, 301), (128, 128), (400, 50)]:
        p.set_image(np.full((*hw, 3), 127, dtype=np.uint8))
        assert p.predict(points=[[hw[1] / 2, hw[0] / 2]], labels=[1]).masks.shape[1:] == hw


def test_predict_before_set_image(model):
    with pytest.raises(RuntimeError, match="set_image"):
        SAM2ImagePredictor(model).predict(points=[[1, 1]], labels=[1])


@pytest.mark.parametrize(
    ("image", "field"),
    [
        (np.zeros((10, 10), dtype=np.uint8), "HxWx3"),
        (np.zeros((10, 10, 4), dtype=np.uint8), "HxWx3"),
        (np.zeros((10, 10, 3), dtype=np.float32), "uint8"),
        ([[1, 2, 3]], "numpy array"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "empty"),
    ],
)
def test_bad_images(model, image, field):
    with pytest.raises(ValueError, match=f"image: .*{field}"):
        SAM2ImagePredictor(model).set_image(image)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ({"points": [[200, 10]], "labels": [1]}, "points: point 0 .* outside the 130x90 image"),
        ({"points": [[-1, 10]], "labels": [1]}, "points: .*outside"),
        ({"points": [[float("nan"), 10]], "labels": [1]}, "points: contains NaN"),
        ({"points": [[float("inf"), 10]], "labels": [1]}, "points: contains NaN or infinite"),
        ({"points": [[1, 2, 3]], "labels": [1]}, "points: expected .* Nx2"),
        ({"points": [[10, 10]], "labels": [2]}, "labels: must be 0 .* or 1"),
        ({"points": [[10, 10]], "labels": [1, 0]}, "labels: got 2 labels for 1 points"),
        ({"points": [[10, 10]]}, "labels: 1 points need 1 labels"),
        ({"box": [50, 10, 20, 40]}, "box: corners must satisfy x0 <= x1"),
        ({"box": [10, 40, 20, 10]}, "box: corners must satisfy .* y0 <= y1"),
        ({"box": [10, 10, 20]}, "box: expected \\(x0, y0, x1, y1\\)"),
        ({"box": [10, 10, 200, 40]}, "box: .* is not inside the 130x90 image"),
        ({"box": [10, 10, 130, 40]}, "box: .* is not inside the 130x90 image"),  # x = 130: past the last pixel
        ({"box": [130, 10, 130, 40]}, "box: .* is not inside the 130x90 image"),  # wholly right of the image
        ({"mask": np.zeros((90, 131), dtype=bool)}, "mask: expected shape 90x130"),
        ({"mask": np.full((90, 130), np.nan)}, "mask: contains NaN"),
        ({}, "prompt: give at least one"),
        ({"points": "abc", "labels": [1]}, "points: expected numbers"),
    ],
)
def test_bad_prompts_name_the_field(predictor, prompt, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(**prompt)


def test_validate_prompt_orders_box_corners_first():
    p = validate_prompt((100, 200), points=[[5, 6]], labels=[0], box=[1, 2, 3, 4])
    coords, labels = p.point_inputs()
    assert coords.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert labels.tolist() == [2, 3, 0]
    assert p.num_points == 3


# ---------------------------------------------------------------- CPU fast paths = plain math
@torch.inference_mode()
def test_cpu_fast_paths_equal_the_plain_computation():
    from sam2_model.modeling.memory_attention import MemoryAttention

    torch.manual_seed(0)
    attn = MemoryAttention(d_model=64, mem_dim=16, num_layers=2, dim_feedforward=128, dropout=0.0, rope_theta=1e4)
    for p in attn.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    curr = torch.randn(1, 64, 64, generator=gen).expand(3, -1, -1)  # one frame, three objects
    curr_pos = torch.randn(1, 64, 64, generator=gen).expand(3, -1, -1)
    memory = torch.randn(3, 2 * 64 + 8, 16, generator=gen)
    memory_pos = torch.randn(3, 2 * 64 + 8, 16, generator=gen)
    fast = attn.eval()(curr, curr_pos, memory, memory_pos, 8)  # shared self-attention, per-object chunks
    attn.cpu_object_chunk = None
    wide = attn(curr, curr_pos, memory, memory_pos, 8)
    plain = attn.train()(curr.contiguous(), curr_pos.contiguous(), memory, memory_pos, 8)  # dropout 0: plain path
    attn.eval()
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wide, plain, rtol=1e-5, atol=1e-5)


def test_rowwise_chunks_give_the_same_rows():
    from sam2_model.modeling.common import rowwise

    lin = torch.nn.Linear(8, 5)
    x = torch.randn(3, 1500, 8)
    torch.testing.assert_close(rowwise(lin, x, chunk=256), lin(x), rtol=0, atol=1e-6)
