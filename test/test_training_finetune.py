"""The fine-tuning path the README gives users, end to end: an official SAM 2.1 checkpoint,
their own videos in the DAVIS layout, `python -m sam2_model.training` as a command, and the
official `sam2` package loading what it wrote."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import OFFICIAL_CONFIG_FILES, build_official

from sam2_model.data.davis import write_davis
from sam2_model.data.synthetic import SyntheticConfig, generate_video

pytestmark = pytest.mark.parity

NAME = "sam2.1_hiera_tiny"
LR = 1e-6  # small enough that no weight can move far from the checkpoint in 2 steps


def test_fine_tune_an_official_checkpoint_on_davis_videos(tmp_path):
    """2 steps on 2 DAVIS-layout videos from an official-format checkpoint: the run starts
    from those weights (every tensor within a few steps of lr of them, yet some moved), and
    the official `build_sam2` loads its `final.pt` strictly, to the same tensors."""
    small = SyntheticConfig(height=48, width=64, num_frames=4)
    write_davis({"cups": generate_video(2, small), "boxes": generate_video(4, small)}, tmp_path / "data")
    init = build_official(NAME).state_dict()
    torch.save({"model": init}, tmp_path / "init.pt")  # the layout of Meta's published files

    args = [
        "--data", str(tmp_path / "data"), "--model", NAME, "--init-checkpoint", str(tmp_path / "init.pt"),
        "--image-size", "64", "--clip-length", "2", "--max-objects", "2", "--steps", "2", "--lr", str(LR),
        "--warmup-steps", "1", "--checkpoint-every", "2", "--log-every", "1", "--device", "cpu",
        "--out-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "sam2_model.training", *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "run" / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2]

    tuned = torch.load(tmp_path / "run" / "final.pt", map_location="cpu", weights_only=True)["model"]
    assert tuned.keys() == init.keys()
    # AdamW moves a weight by about lr (plus lr * weight decay * weight) per step
    drift = {k: (tuned[k].float() - init[k].float()).abs().max().item() for k in init}
    assert max(drift.values()) < 10 * LR, max(drift.items(), key=lambda kv: kv[1])
    assert sum(d > 0 for d in drift.values()) > len(drift) // 2, "fine-tuning moved almost no weights"

    from sam2.build_sam import build_sam2 as build_official_sam2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = build_official_sam2(OFFICIAL_CONFIG_FILES[NAME], str(tmp_path / "run" / "final.pt"), device="cpu")
    for key, value in official.state_dict().items():
        assert torch.equal(value, tuned[key]), key
