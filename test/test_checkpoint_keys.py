"""Every official configuration: our state dict has exactly the official keys and shapes,
so the official checkpoints load strictly; the loader recognises each file's config."""

from __future__ import annotations

import pytest
import torch
from conftest import OFFICIAL_CONFIG_FILES, build_official

from sam2_model import CONFIGS, SAM2Model, guess_config_name, load_checkpoint
from sam2_model.checkpoint import expected_shapes

pytestmark = pytest.mark.parity

# Published facts: number of state-dict entries of each official SAM 2.1 checkpoint.
OFFICIAL_KEY_COUNTS = {
    "sam2.1_hiera_tiny": 471,
    "sam2.1_hiera_small": 519,
    "sam2.1_hiera_base_plus": 615,
    "sam2.1_hiera_large": 903,
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_CONFIG_FILES))
def test_keys_and_shapes_equal_official(name):
    ref = build_official(name, perturb=0.0)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = expected_shapes(CONFIGS[name])
    assert set(ours) == set(ref_shapes), (
        f"missing: {sorted(set(ref_shapes) - set(ours))[:5]}, extra: {sorted(set(ours) - set(ref_shapes))[:5]}"
    )
    assert ours == ref_shapes
    if name in OFFICIAL_KEY_COUNTS:
        assert len(ours) == OFFICIAL_KEY_COUNTS[name]
    # the official file identifies itself
    assert guess_config_name(ref.state_dict()) == name
    # and loads strictly into our model (on the meta device: no weight copies needed)
    with torch.device("meta"):
        model = SAM2Model(CONFIGS[name])
    model.load_state_dict(ref.state_dict(), strict=True, assign=True)
    del ref


def test_load_checkpoint_copies_every_tensor(pair_factory):
    pair = pair_factory("sam2.1_hiera_tiny")
    ref_sd = pair.ref.state_dict()
    ours_sd = pair.ours.state_dict()
    assert set(ref_sd) == set(ours_sd)
    for key, value in ref_sd.items():
        assert torch.equal(ours_sd[key], value), key
    # loading again into a freshly initialised model gives the same weights
    fresh = SAM2Model(pair.ours.config)
    assert not torch.equal(fresh.no_obj_ptr, pair.ours.no_obj_ptr)
    load_checkpoint(fresh, pair.checkpoint)
    assert torch.equal(fresh.no_obj_ptr, pair.ours.no_obj_ptr)
