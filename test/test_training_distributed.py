"""Data-parallel training: gradients averaged over real Gloo processes, and `sam2-train`
under `torchrun` with two processes (in step, resuming exactly)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sam2_model.training.distributed import ProcessGroup, average_gradients, check_in_sync

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))


def _average_worker(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    group = ProcessGroup(rank, 2, rank)
    shared = torch.nn.Parameter(torch.zeros(3))
    only_rank0 = torch.nn.Parameter(torch.zeros(2))
    unused = torch.nn.Parameter(torch.zeros(2))
    shared.grad = torch.full((3,), float(rank + 1))  # 1 on rank 0, 2 on rank 1
    if rank == 0:
        only_rank0.grad = torch.tensor([4.0, -2.0])
    had = average_gradients([shared, only_rank0, unused], group)
    none_had = average_gradients([unused], group)
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0 + rank)  # rank 1 out of step
    try:
        check_in_sync(model, group, step=7)
        out_of_step = ""
    except RuntimeError as exc:
        out_of_step = str(exc)
    results[rank] = (had, none_had, shared.grad.tolist(), only_rank0.grad.tolist(), unused.grad, out_of_step)
    dist.destroy_process_group()


def test_gradients_are_averaged_over_processes(tmp_path):
    """Two real Gloo processes: a gradient present on both is averaged, one present on one
    process counts as zero on the other, one present on none stays None; weights that differ
    between processes are caught."""
    results = mp.Manager().dict()
    mp.spawn(_average_worker, args=(str(tmp_path / "init"), results), nprocs=2)
    for rank in (0, 1):
        had, none_had, shared, only_rank0, unused, out_of_step = results[rank]
        assert had and not none_had
        assert shared == [1.5, 1.5, 1.5]
        assert only_rank0 == [2.0, -1.0]
        assert unused is None
        assert "step 7" in out_of_step and "[1]" in out_of_step


def _train(out: Path, steps: int, procs: int) -> subprocess.CompletedProcess:
    args = [
        "--model", "sam2_ros_demo", "--image-size", "64", "--clip-length", "3", "--max-objects", "2",
        "--steps", str(steps), "--warmup-steps", "2", "--checkpoint-every", "2", "--log-every", "1",
        "--device", "cpu", "--out-dir", str(out), "--synthetic-height", "48", "--synthetic-width", "64",
    ]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "-m", "sam2_model.training", *args]
    else:
        cmd = [TORCHRUN, "--standalone", f"--nproc-per-node={procs}", "-m", "sam2_model.training", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.skipif(not dist.is_gloo_available(), reason="this PyTorch has no Gloo backend")
def test_torchrun_two_processes_train_together_and_resume_exactly(tmp_path):
    _train(tmp_path / "straight", 4, procs=2)
    final = _weights(tmp_path / "straight" / "final.pt")
    last = torch.load(tmp_path / "straight" / "last.pt", map_location="cpu", weights_only=True)
    assert last["step"] == 4 and len(last["other_processes"]) == 1  # process 1's random streams
    with open(tmp_path / "straight" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # one log, written once per step

    _train(tmp_path / "resumed", 2, procs=2)
    done = _train(tmp_path / "resumed", 4, procs=2)  # the same command, longer: picks up at step 2
    assert "resuming from" in done.stderr
    resumed = _weights(tmp_path / "resumed" / "final.pt")
    for name, value in final.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6, msg=name)

    # resumed by another number of processes: the weights go on, the clips are fresh (said)
    shutil.copytree(tmp_path / "straight", tmp_path / "switched")
    done = _train(tmp_path / "switched", 5, procs=1)
    assert "written by 2 process(es), resumed by 1" in done.stderr
    assert torch.load(tmp_path / "switched" / "last.pt", weights_only=True)["step"] == 5

    # one process alone learns from process 0's clips only: another result
    _train(tmp_path / "alone", 4, procs=1)
    alone = _weights(tmp_path / "alone" / "final.pt")
    assert any(not torch.allclose(alone[k], final[k], atol=1e-6) for k in final if final[k].is_floating_point())
