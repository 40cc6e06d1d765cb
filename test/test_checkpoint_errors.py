"""The loader's errors: a missing file, a file that is not a checkpoint, another model's
checkpoint; and the formats it accepts."""

from __future__ import annotations

import pytest
import torch

from sam2_model import (
    CheckpointError,
    CheckpointFormatError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    build_sam2,
    load_checkpoint,
    save_checkpoint,
)
from sam2_model.checkpoint import expected_shapes
from sam2_model.config import CONFIGS


def _random_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen) for k, shape in expected_shapes(CONFIGS[name]).items()}


def _shaped_state_dict(name: str) -> dict[str, torch.Tensor]:
    """A state dict with the config's keys and shapes (values irrelevant: cheap zeros)."""
    return {k: torch.zeros(shape) for k, shape in expected_shapes(CONFIGS[name]).items()}


@pytest.fixture(scope="module")
def tiny():
    return build_sam2("sam2.1_hiera_tiny", image_size=128)


def test_missing_file(tiny, tmp_path):
    path = tmp_path / "nope" / "sam2.1_hiera_tiny.pt"
    with pytest.raises(CheckpointNotFoundError) as err:
        load_checkpoint(tiny, path)
    assert "not found" in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a checkpoint at all\n" * 10, bytes(range(256)) * 40],
    ids=["empty", "text", "binary"],
)
def test_file_that_is_not_a_checkpoint(tiny, tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError) as err:
        load_checkpoint(tiny, path)
    assert "not a readable PyTorch checkpoint" in str(err.value)
    assert "broken.pt" in str(err.value)


def test_truncated_checkpoint(tiny, tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(tiny, good)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointFormatError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tiny, bad)


def test_pytorch_file_without_sam2_weights(tiny, tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(3), "fc.bias": torch.zeros(2)}, path)
    with pytest.raises(CheckpointFormatError, match="not a SAM 2 checkpoint"):
        load_checkpoint(tiny, path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointFormatError, match="not a state dict"):
        load_checkpoint(tiny, path)


def test_pickle_with_code_is_refused(tiny, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(CheckpointFormatError):
        load_checkpoint(tiny, path)


@pytest.mark.parametrize(
    ("file_config", "model_config"),
    [
        ("sam2.1_hiera_large", "sam2.1_hiera_tiny"),
        ("sam2.1_hiera_small", "sam2.1_hiera_tiny"),
        ("sam2_hiera_tiny", "sam2.1_hiera_tiny"),
        ("sam2.1_hiera_base_plus", "sam2_hiera_base_plus"),
    ],
)
def test_checkpoint_of_another_size_names_the_matching_config(tmp_path, file_config, model_config):
    path = tmp_path / "other.pt"
    torch.save({"model": _shaped_state_dict(file_config)}, path)
    with torch.device("meta"):
        from sam2_model import SAM2Model

        model = SAM2Model(CONFIGS[model_config])
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint(model, path)
    msg = str(err.value)
    assert f"'{file_config}' checkpoint" in msg
    assert f"build_sam2('{file_config}'" in msg
    assert model_config in msg
    assert "size mismatch" not in msg  # not PyTorch's raw message
    assert isinstance(err.value, CheckpointError) and isinstance(err.value, ValueError)


def test_shape_mismatch_message_shows_an_example(tmp_path):
    state = _shaped_state_dict("sam2.1_hiera_large")
    with pytest.raises(CheckpointMismatchError) as err:
        build_sam2("sam2.1_hiera_tiny", state)
    assert "image_encoder.trunk" in str(err.value) and "file (" in str(err.value)


def test_partial_checkpoint_lists_missing_keys(tmp_path):
    state = _random_state_dict("sam2.1_hiera_tiny")
    del state["no_obj_ptr"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as err:
        build_sam2("sam2.1_hiera_tiny", state)
    msg = str(err.value)
    assert "1 missing (e.g. no_obj_ptr)" in msg and "1 unexpected (e.g. extra.weight)" in msg
    assert "closest is 'sam2.1_hiera_tiny'" in msg


@pytest.mark.parametrize("wrap", ["official", "bare", "ddp", "in_memory"])
def test_accepted_formats(tmp_path, wrap):
    state = _random_state_dict("sam2.1_hiera_tiny", seed=3)
    path = tmp_path / "ckpt.pt"
    if wrap == "official":
        torch.save({"model": state, "epoch": 3}, path)
    elif wrap == "bare":
        torch.save(state, path)
    elif wrap == "ddp":
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    model = build_sam2("sam2.1_hiera_tiny", state if wrap == "in_memory" else path, image_size=128)
    assert torch.equal(model.no_obj_ptr, state["no_obj_ptr"])
    assert torch.equal(
        model.image_encoder.trunk.blocks[3].attn.qkv.weight, state["image_encoder.trunk.blocks.3.attn.qkv.weight"]
    )
    assert not model.training


def test_save_then_load_roundtrip(tmp_path):
    model = build_sam2("sam2_hiera_tiny", image_size=128)
    path = tmp_path / "mine.pt"
    save_checkpoint(model, path, step=7)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "step"}
    other = build_sam2("sam2_hiera_tiny", path, image_size=128)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
