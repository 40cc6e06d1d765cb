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
