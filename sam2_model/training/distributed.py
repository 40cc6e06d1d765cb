"""Data-parallel training over processes started by ``torchrun``.

Each process (rank) trains on its own clips and prompts; before every optimiser step the
gradients are averaged over the processes, so every process takes the same step and the
weights stay identical (checked at each checkpoint). Rank 0 writes checkpoints and logs.

    torchrun --standalone --nproc-per-node 2 -m sam2_model.training --steps 600 ...

On a CPU, ``torchrun`` gives each process one thread (``OMP_NUM_THREADS=1``): on a 2-core
machine two processes train 1.25-1.6x more clips per second than one process with two
threads (the small model's operations do not keep two threads busy; the README has the
numbers). On GPUs, one process per GPU (NCCL).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "ProcessGroup",
    "average_gradients",
    "barrier",
    "check_in_sync",
    "gather_objects",
    "init_from_env",
    "mean_values",
]


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0  # this process's index among all processes
    world_size: int = 1  # number of processes
    local_rank: int = 0  # index among the processes on this machine (its GPU)

    @property
    def enabled(self) -> bool:
        """More than one process: gradients are averaged."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints, logs and progress."""
        return self.rank == 0


def init_from_env(device: torch.device) -> tuple[ProcessGroup, torch.device]:
    """The process group ``torchrun`` describes in the environment (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``), joined with Gloo on the CPU or NCCL on CUDA; without ``torchrun``, one
    process. Returns the group and this process's device (``cuda:LOCAL_RANK`` on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup(), device
    group = ProcessGroup(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        if group.local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {group.local_rank}: this machine has {torch.cuda.device_count()} GPU(s); "
                "start at most one process per GPU"
            )
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return group, device


def average_gradients(params: Iterable[Tensor], group: ProcessGroup) -> bool:
    """Average the gradients of ``params`` over the processes, in place. A parameter with a
    gradient on some process but not on this one counts here as a zero gradient; one without
    a gradient anywhere keeps none (as in a single process). Returns whether any parameter
    has a gradient (``False``: no process has anything to learn from this step)."""
    params = [p for p in params if p.requires_grad]
    if not group.enabled:
        return any(p.grad is not None for p in params)
    device = params[0].device
    present = torch.tensor([float(p.grad is not None) for p in params], device=device)
    dist.all_reduce(present)  # how many processes have each gradient
    used = [p for p, n in zip(params, present.tolist()) if n > 0]
    if not used:
        return False
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in used]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)  # sum over processes
    flat /= group.world_size
    offset = 0
    for p in used:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
    return True


def mean_values(values: dict[str, float], group: ProcessGroup, device: torch.device) -> dict[str, float]:
    """Each value averaged over the processes (loss terms for the log)."""
    if not group.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / group.world_size for k, v in zip(keys, t.tolist())}


def gather_objects(obj: object, group: ProcessGroup) -> list[object]:
    """``obj`` from every process, in rank order (on every process)."""
    if not group.enabled:
        return [obj]
    out: list[object] = [None] * group.world_size
    dist.all_gather_object(out, obj)
    return out


def check_in_sync(model: torch.nn.Module, group: ProcessGroup, step: int) -> None:
    """Raise ``RuntimeError`` if the processes' weights differ (they take the same steps
    from the same weights, so they are bit-identical unless something went wrong)."""
    if not group.enabled:
        return
    digest = hashlib.sha256()
    with torch.no_grad():
        for p in model.parameters():
            digest.update(p.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())  # exact bits
    everyone = gather_objects(digest.hexdigest(), group)
    bad = [r for r, d in enumerate(everyone) if d != everyone[0]]
    if bad:
        raise RuntimeError(f"step {step}: the weights of process(es) {bad} differ from process 0's")


def barrier(group: ProcessGroup) -> None:
    """Wait for every process."""
    if group.enabled:
        dist.barrier()
