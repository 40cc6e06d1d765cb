"""The committed demo model and the one-command demo."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sam2_model import build_sam2
from sam2_model.checkpoint import read_checkpoint
from sam2_model.eval.synthetic import evaluate

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "sam2_ros_demo.pt"


def test_demo_model_is_small_and_in_the_official_format():
    assert DEMO_MODEL.stat().st_size < 10 * 2**20  # a few MB (2.3 M parameters in fp32)
    state = read_checkpoint(DEMO_MODEL)
    assert "image_encoder.trunk.pos_embed" in state
    build_sam2("sam2_ros_demo", DEMO_MODEL)  # loads strictly


# The quality the committed model was measured at on the 30 held-out videos (README table),
# less a margin for float-summation differences between machines; and issue 5's bar.
MEASURED_JF_30_VIDEOS = 0.893
TARGET_JF = 0.85


def test_demo_model_keeps_its_measured_quality_on_held_out_videos():
    """The README's evaluation: 30 held-out videos, one click per object (about a minute)."""
    model = build_sam2("sam2_ros_demo", DEMO_MODEL)
    report = evaluate(model, num_videos=30)
    assert report.jf >= max(MEASURED_JF_30_VIDEOS - 0.02, TARGET_JF), f"J&F {report.jf:.3f}"
    assert report.occlusion_accuracy >= 0.9, f"occlusion flag {report.occlusion_accuracy:.1%}"


@pytest.mark.ros
def test_make_demo_pipeline(tmp_path):
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix("sam2_ros")) / "lib" / "sam2_ros" / "sam2_demo"
    out = subprocess.run(
        # 5 Hz: an idle 2-core machine tracks all 20 frames (about 50 ms each); the node drops
        # frames when it falls behind (tested in test_node_ros), so a loaded one may track fewer
        [sys.executable, str(exe), "--out", str(tmp_path), "--frames", "20", "--rate", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "overlay.mp4").stat().st_size > 1000
    assert (tmp_path / "contact_sheet.png").exists()
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(0.0 <= float(r["J&F"]) <= 1.0 and int(r["frames"]) >= 10 for r in rows)
    assert "mean J&F" in out.stdout
    assert re.search(r"node: \d+ ms per frame tracking and publishing \(up to \d+ Hz\); output [\d.]+ Hz", out.stdout)


STAGES = ("1_image_seed31", "2_video", "3_clip10", "4_reappear", "5_full")


def test_train_demo_script_runs_every_stage(tmp_path):
    """`scripts/train_demo.sh` end to end with 2 steps per stage (STEPS=2) and one process
    (PROCS=1): every stage's flags parse, each stage starts from the one before, the model is
    copied and evaluated; stage 1 trains with its seed, the video stages with VIDEO_SEED.
    Run again with 2 processes after the last stage lost its final.pt:
    the finished stages are skipped and the interrupted one resumes under `torchrun`. The
    model goes to OUT_DIR/model.pt, never over the committed one unless MODEL_OUT says so. (The
    full run takes hours; this checks the chain.)"""
    out = tmp_path / "runs"
    model = out / "model.pt"  # MODEL_OUT's default
    committed_path = ROOT / "models" / "sam2_ros_demo.pt"
    committed = committed_path.read_bytes()
    # 2 steps do not leave the empty-mask plateau: here stage 1 counts as left below a dice
    # loss of 1 (the plateau check itself is exercised at the end)
    env = {k: v for k, v in os.environ.items() if k != "MODEL_OUT"}
    env.update(STEPS="2", EVAL_VIDEOS="1", PROCS="1", STAGE1_MAX_DICE="1.0", VIDEO_SEED="7")
    cmd = ["bash", str(ROOT / "scripts" / "train_demo.sh"), str(out)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in STAGES:
        assert (out / name / "final.pt").exists(), f"stage {name} wrote no final.pt"
        with open(out / name / "log.csv") as f:
            log = list(csv.DictReader(f))
        assert log and int(log[-1]["step"]) == 2, f"stage {name} did not run its 2 steps"
        seed = torch.load(out / name / "final.pt", map_location="cpu", weights_only=True)["config"]["seed"]
        assert seed == (31 if name == STAGES[0] else 7), f"stage {name} trained with seed {seed}"
    assert "1 videos: J" in first.stdout
    build_sam2("sam2_ros_demo", model)  # the copied model loads strictly
    assert read_checkpoint(model).keys() == read_checkpoint(out / STAGES[-1] / "final.pt").keys()

    (out / STAGES[-1] / "final.pt").unlink()  # interrupted after its last checkpoint
    model.unlink()
    second = subprocess.run(cmd, env={**env, "PROCS": "2"}, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert all(f"stage {name}: done" in second.stdout for name in STAGES[:-1])
    assert f"stage {STAGES[-1]} (2 process(es))" in second.stdout
    assert "resuming from" in second.stderr and "written by 1 process(es), resumed by 2" in second.stderr
    build_sam2("sam2_ros_demo", model)
    assert committed_path.read_bytes() == committed, "the committed model was overwritten"

    bad = subprocess.run(cmd, env={**env, "PROCS": "two"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "PROCS: a number of processes >= 1, got 'two'" in bad.stderr
    bad = subprocess.run(cmd, env={**env, "STAGE1_SEEDS": "5 x"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "STAGE1_SEEDS: whole numbers separated by spaces, got '5 x'" in bad.stderr
    bad = subprocess.run(cmd, env={**env, "VIDEO_SEED": "-1"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "VIDEO_SEED: a whole number, got '-1'" in bad.stderr


def test_train_demo_script_retrains_stage_1_stuck_on_the_plateau(tmp_path):
    """A stage 1 whose dice loss stays high (here: every run, with a bound of 0) is kept aside
    and trained again with the next seed; when every seed stays stuck the script stops before
    the video stages and says what to do."""
    out = tmp_path / "runs"
    env = {**os.environ, "STEPS": "2", "MODEL_OUT": str(tmp_path / "model.pt"), "PROCS": "1"}
    env.update(STAGE1_SEEDS="5 6", STAGE1_MAX_DICE="0")
    cmd = ["bash", str(ROOT / "scripts" / "train_demo.sh"), str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["1_image_seed5", "1_image_seed6"]
    assert all((out / name / "final.pt").exists() for name in ("1_image_seed5", "1_image_seed6"))
    assert run.stdout.count("not below 0.0") == 2
    assert "stage 1_image_seed5: still on the empty-mask plateau" in run.stderr
    assert "stayed on the empty-mask plateau with every seed of STAGE1_SEEDS (5 6)" in run.stderr
    assert not (tmp_path / "model.pt").exists()

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # nothing retrained
    assert again.returncode == 1 and again.stdout.count(": done (") == 2


def test_gpu_training_script_runs_on_the_cpu(tmp_path):
    """`scripts/train_demo_gpu.sh` (time-budgeted training over batches of clips from worker
    processes, then validation and held-out evaluation), shrunk to run here: the calibration
    sets the number of steps, the run trains them and both evaluations print."""
    out = tmp_path / "gpu"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "MINUTES": "0.2",
        "BATCH": "2",
        "WORKERS": "1",
        "CLIP": "3",
        "EVAL_VIDEOS": "1",
    }
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "train_demo_gpu.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    steps = int(run.stdout.split("training ")[1].split(" steps")[0])
    with open(out / "train" / "log.csv") as f:
        assert int(list(csv.DictReader(f))[-1]["step"]) == steps >= 10
    assert run.stdout.count("1 videos: J") == 2
    build_sam2("sam2_ros_demo", out / "final.pt")
