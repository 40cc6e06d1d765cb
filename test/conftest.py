"""Shared fixtures: the official SAM 2 package as a reference, with random weights saved in
the official checkpoint format and loaded into our model."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)

# The reference maps our registry names to its Hydra config files.
OFFICIAL_CONFIG_FILES = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
}

PARITY_IMAGE_SIZE = 256


def _unit_config():
    from sam2_model import HieraConfig, SAM2Config

    return SAM2Config(
        name="unit",
        trunk=HieraConfig(
            embed_dim=16,
            num_heads=1,
            stages=(1, 1, 2, 1),
            global_att_blocks=(3,),
            window_spec=(4, 2, 4, 2),
            window_pos_embed_bkg_size=(4, 4),
        ),
        image_size=128,
        d_model=64,
        mem_dim=16,
        memory_attention_layers=2,
        memory_attention_ffn_dim=128,
        decoder_heads=4,
        decoder_mlp_dim=128,
    )


# A tiny random configuration for fast CPU tests.
UNIT = _unit_config()


def build_official(name: str, image_size: int = 1024, seed: int = 0, perturb: float = 0.02):
    """The official ``SAM2VideoPredictor`` with random weights (fixed seed).

    Every tensor gets extra Gaussian noise (``perturb``) so that parameters the official
    code initialises to zeros or 1e-6 (position embeddings, layer scales, biases) carry
    real values and are exercised by the comparisons.
    """
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_sam2_video_predictor(
            OFFICIAL_CONFIG_FILES[name],
            ckpt_path=None,
            device="cpu",
            hydra_overrides_extra=[f"++model.image_size={image_size}"],
        )
    if perturb:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for key, t in model.state_dict().items():
                if key.endswith("positional_encoding_gaussian_matrix"):
                    continue
                t.add_(perturb * torch.randn(t.shape, generator=gen))
    return model.eval()


@dataclass
class ModelPair:
    """The official model and ours, with identical weights."""

    name: str
    image_size: int
    ref: torch.nn.Module
    ours: torch.nn.Module
    checkpoint: Path


_PAIRS: dict[tuple[str, int], ModelPair] = {}


def make_pair(name: str, image_size: int, tmp_root: Path) -> ModelPair:
    key = (name, image_size)
    if key not in _PAIRS:
        from sam2_model import build_sam2

        ref = build_official(name, image_size)
        ckpt = tmp_root / f"{name}_{image_size}.pt"
        torch.save({"model": ref.state_dict()}, ckpt)  # the official file format
        ours = build_sam2(name, ckpt, image_size=image_size)
        _PAIRS[key] = ModelPair(name, image_size, ref, ours, ckpt)
    return _PAIRS[key]


@pytest.fixture(scope="session")
def pair_factory(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")

    def factory(name: str, image_size: int = PARITY_IMAGE_SIZE) -> ModelPair:
        return make_pair(name, image_size, root)

    return factory


@pytest.fixture(scope="session", params=["sam2.1_hiera_tiny", "sam2.1_hiera_small"])
def pair(request, pair_factory) -> ModelPair:
    """Tiny and small at the reduced parity image size."""
    return pair_factory(request.param)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Max absolute difference relative to the reference's max magnitude."""
    ours, ref = ours.detach().float(), ref.detach().float()
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    if ref.numel() == 0:
        return 0.0
    scale = ref.abs().max().clamp_min(1e-12)
    return float((ours - ref).abs().max() / scale)


TOL = 1e-4


@contextlib.contextmanager
def object_score_bias(pair, value: float):
    """Shift the object-score head's output bias on both models (visible / occluded)."""
    heads = [pair.ref.sam_mask_decoder.pred_obj_score_head, pair.ours.sam_mask_decoder.pred_obj_score_head]
    saved = [h.layers[-1].bias.detach().clone() for h in heads]
    with torch.no_grad():
        for h in heads:
            h.layers[-1].bias.add_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for h, s in zip(heads, saved):
                h.layers[-1].bias.copy_(s)


def moving_shapes_video(num_frames: int, h: int = 120, w: int = 160, seed: int = 0):
    """Frames ``[H, W, 3]`` uint8 of three moving shapes on a textured background, and each
    shape's mask per frame (dict id -> [H, W] bool)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    background = (rng.random((h, w, 3)) * 50 + 90).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    frames, masks = [], []
    for t in range(num_frames):
        img = background.copy()
        m1 = (yy - 40 - t) ** 2 + (xx - 30 - 3 * t) ** 2 < 18**2  # disc moving right-down
        m2 = (np.abs(yy - 85) < 14) & (np.abs(xx - 120 + 2 * t) < 22)  # box moving left
        m3 = (np.abs(yy - 20 - 2 * t) + np.abs(xx - 110) < 16) & ~m1  # diamond moving down
        for m, colour in ((m1, (230, 50, 40)), (m2, (40, 210, 70)), (m3, (50, 60, 230))):
            img[m] = colour
        frames.append(img)
        masks.append({1: m1, 2: m2, 3: m3})
    return frames, masks


def unit_model(image_size: int = 128, seed: int = 0, score_bias: float = 3.0):
    """A random model of the UNIT configuration (every weight perturbed, objects visible)."""
    from sam2_model import SAM2Model

    torch.manual_seed(seed)
    model = SAM2Model(UNIT.replace(image_size=image_size)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(score_bias)
    return model


def _importable(module: str) -> bool:
    """``module`` imports as a real module (a folder named like it, e.g. this repository's
    launch/, only passes for an empty namespace package)."""
    import importlib

    try:
        return getattr(importlib.import_module(module), "__file__", None) is not None
    except ImportError:
        return False


def requires_ros2(*modules: str) -> pytest.MarkDecorator:
    """Skip, with the reason, unless every one of ``modules`` imports: the ROS 2 packages
    without a PyPI wheel (launch, launch_ros, message_filters, vision_msgs...) come from a
    sourced ROS 2 distro or from the ros2-vendor folder that `make setup` builds and
    scripts/env.sh puts on the paths (../shared/ros2-vendor, or ROS2_VENDOR)."""
    missing = [m for m in modules if not _importable(m)]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not importable: source a ROS 2 distro, or put ros2-vendor at "
        "../shared/ros2-vendor (or set ROS2_VENDOR), then run make setup and source scripts/env.sh",
    )
