"""SAM 2 training: clips of 8 frames, prompts sampled from the ground truth, corrective
clicks, focal + dice + IoU + object-score losses, AdamW with an inverse-square-root
schedule and layer-wise learning-rate decay in the image encoder. Checkpoints are written
in the official format (``{"model": state_dict, ...}``) and runs resume from the last one.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..build import build_sam2, resolve_device
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import SAM2Config, get_config
from ..data.synthetic import SyntheticConfig
from ..modeling.sam2 import SAM2Model
from .augment import AugmentConfig
from .clip_forward import ClipPrompt, forward_clip
from .data import ClipSource, ClipStream, sample_clip_tensors
from .distributed import (
    average_gradients,
    barrier,
    check_in_sync,
    gather_objects,
    init_from_env,
    mean_values,
)
from .ema import WeightAverage
from .losses import LossWeights, sam2_loss
from .prompt_sampler import PromptProbabilities, PromptSampler

__all__ = ["TrainConfig", "Trainer", "WeightAverage", "inverse_sqrt_schedule", "model_config", "param_groups"]

_LOG_TERMS = ("total", "focal", "dice", "iou", "object_score")  # loss terms in log.csv, in order


@dataclass(frozen=True)
class TrainConfig:
    """A training run."""

    model: str = "sam2_ros_demo"  # registry name of the model configuration
    init_checkpoint: str = ""  # start from these weights ("" = random init)
    image_size: int = 0  # model input size (0 = the configuration's)
    memory_attention_dropout: float = -1.0  # dropout in the memory attention (< 0 = the configuration's)
    data: str = "synthetic"  # "synthetic" or a folder in the DAVIS layout
    clip_length: int = 8  # frames per training clip
    batch_clips: int = 1  # clips per optimiser step (their objects run as one batch)
    num_workers: int = 0  # processes preparing clips (0: in the training process; resumes exactly)
    max_objects: int = 3  # objects per clip
    second_prompt_prob: float = 0.5  # chance of a second prompted frame in a clip
    reappear_clip_prob: float = 0.0  # synthetic data: chance of a clip where an object vanishes and comes back
    mask_prompt_prob: float = 0.5  # a prompted frame gets the ground-truth mask ...
    click_prompt_prob: float = 0.25  # ... a click inside it ...
    box_prompt_prob: float = 0.25  # ... or a jittered box (normalised by the three's sum)
    correction_rounds: int = 1  # corrective-click rounds on click/box-prompted frames
    steps: int = 2000  # optimiser steps
    lr: float = 5e-4  # peak learning rate
    weight_decay: float = 0.05
    warmup_steps: int = 100  # linear warm-up, then lr * sqrt(warmup / step)
    cooldown_fraction: float = 0.1  # last fraction of the steps: linear decay to 0
    layer_decay: float = 0.9  # image-encoder layer-wise lr decay (deeper = larger lr)
    grad_clip: float = 0.1  # gradient-norm clipping
    ema_decay: float = 0.0  # 0: off; else final.pt holds an exponential moving average of the weights
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA (CPU runs fp32)
    out_dir: str = "runs/sam2"  # checkpoints, log.csv
    checkpoint_every: int = 200
    log_every: int = 10
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # synthetic video settings
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # clip augmentations

    def __post_init__(self) -> None:
        if self.batch_clips < 1:
            raise ValueError(f"batch_clips: must be >= 1, got {self.batch_clips}")
        if self.clip_length < 1:
            raise ValueError(f"clip_length: must be >= 1, got {self.clip_length}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: must be >= 0, got {self.num_workers}")
        if self.memory_attention_dropout >= 1.0:
            raise ValueError(f"memory_attention_dropout: must be < 1, got {self.memory_attention_dropout}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay: must be in [0, 1), got {self.ema_decay}")


def model_config(cfg: TrainConfig) -> SAM2Config:
    """The model ``cfg`` trains: its registry configuration with the run's overrides."""
    config = get_config(cfg.model, cfg.image_size or None)
    if cfg.memory_attention_dropout >= 0.0:
        config = config.replace(memory_attention_dropout=cfg.memory_attention_dropout)
    return config


def param_groups(model: SAM2Model, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups: trunk block i gets ``lr * layer_decay ** (depth + 1 - (i + 1))``, its
    stem ``lr * layer_decay ** (depth + 1)``, everything else ``lr``; no decay on biases,
    norms and embeddings."""
    depth = len(model.image_encoder.trunk.blocks)
    groups: dict[tuple[float, float], list[Tensor]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = 1.0
        if name.startswith("image_encoder.trunk."):
            layer = int(name.split("blocks.")[1].split(".")[0]) + 1 if ".blocks." in name else 0
            scale = layer_decay ** (depth + 1 - layer)
        no_decay = p.ndim <= 1 or any(k in name for k in ("embed", "token", "tpos_enc", "no_mem", "no_obj"))
        groups.setdefault((scale, 0.0 if no_decay else weight_decay), []).append(p)
    return [{"params": ps, "lr": lr * s, "lr_scale": s, "weight_decay": wd} for (s, wd), ps in groups.items()]


def inverse_sqrt_schedule(step: int, warmup: int, total: int, cooldown_fraction: float) -> float:
    """The learning-rate factor: linear warm-up, ``sqrt(warmup / step)``, linear cool-down."""
    if step < warmup:
        return (step + 1) / warmup
    factor = math.sqrt(warmup / max(step, 1)) if warmup > 0 else 1.0
    cooldown = int(total * cooldown_fraction)
    if cooldown > 0 and step >= total - cooldown:
        factor *= max(total - step, 0) / cooldown
    return factor


class Trainer:
    """Runs :class:`TrainConfig`; ``run()`` resumes from ``out_dir/last.pt`` if present.

    Started by ``torchrun`` with several processes, each trains on its own clips and the
    gradients are averaged (:mod:`.distributed`): a step then learns from one batch of
    ``batch_clips`` clips per process."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.group, self.device = init_from_env(resolve_device(cfg.device))
        torch.manual_seed(cfg.seed)  # the initial weights, dropout: reproducible by configuration
        self.model = build_sam2(model_config(cfg), device=self.device)
        if cfg.init_checkpoint:
            load_checkpoint(self.model, cfg.init_checkpoint)
        if self.group.rank > 0:  # the same weights everywhere, but each process its own dropout
            torch.manual_seed(cfg.seed + 1_000_003 * self.group.rank)
        self.model.train()
        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg.lr, cfg.weight_decay, cfg.layer_decay))
        self.step = 0
        # each process its own clips and prompts (process 0: the streams of a one-process run)
        seed = cfg.seed if self.group.rank == 0 else [cfg.seed, self.group.rank]
        self.rng = np.random.default_rng(seed)
        probs = PromptProbabilities(cfg.mask_prompt_prob, cfg.click_prompt_prob, cfg.box_prompt_prob)
        self.sampler = PromptSampler(probs, seed=seed)
        self.source = ClipSource(
            cfg.data, cfg.clip_length, cfg.synthetic, cfg.seed, cfg.augment, reappear_prob=cfg.reappear_clip_prob
        )
        self.out = Path(cfg.out_dir)
        self.weights = LossWeights()
        self._clips: Iterator[tuple[Tensor, Tensor]] | None = None  # from worker processes
        self.ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    # ------------------------------------------------------------ checkpoints
    def _random_state(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }

    def save(self, path: Path) -> None:
        """Write a resumable checkpoint (process 0 writes; every process must call it)."""
        states = gather_objects(self._random_state(), self.group)  # every process's random streams
        if not self.group.is_main:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_checkpoint(
            self.model,
            tmp,
            step=self.step,
            optimizer=self.optimizer.state_dict(),
            config=_plain(dataclasses.asdict(self.cfg)),
            **states[0],
            **({"other_processes": states[1:]} if self.group.enabled else {}),
            **({"ema": self.ema.state} if self.ema is not None else {}),
        )
        tmp.replace(path)  # never a half-written checkpoint

    def resume(self, path: Path) -> None:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        load_checkpoint(self.model, raw["model"])
        self.optimizer.load_state_dict(raw["optimizer"])
        self.step = int(raw["step"])
        others = raw.get("other_processes", [])
        if len(others) + 1 == self.group.world_size:
            state = raw if self.group.rank == 0 else others[self.group.rank - 1]
            self.rng.bit_generator.state = state["rng"]
            self.sampler.rng.bit_generator.state = state["sampler_rng"]
            torch.set_rng_state(state["torch_rng"])
        else:  # another number of processes: fresh streams, not the ones the run would have drawn
            fresh = [self.cfg.seed, self.group.rank, self.step]
            self.rng, self.sampler.rng = np.random.default_rng(fresh), np.random.default_rng([*fresh, 1])
            if self.group.is_main:
                print(
                    f"{path}: written by {len(others) + 1} process(es), resumed by {self.group.world_size}: "
                    "the weights continue exactly, the random clips do not",
                    file=sys.stderr,
                )
        if self.ema is not None:
            if "ema" not in raw:
                raise ValueError(f"{path}: has no weight average to resume with ema_decay={self.cfg.ema_decay}")
            self.ema.load(raw["ema"])

    # ------------------------------------------------------------ one step
    def _lr(self) -> float:
        cfg = self.cfg
        factor = inverse_sqrt_schedule(self.step, cfg.warmup_steps, cfg.steps, cfg.cooldown_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * group["lr_scale"] * factor
        return cfg.lr * factor

    def _prompts(self, gt: Tensor, frames: list[int]) -> dict[int, list[ClipPrompt]]:
        """Sampled prompts on the prompted frames: ``gt [T, K, S, S]`` bool."""
        prompts = {}
        for t in frames:
            per_object = []
            for k in range(gt.shape[1]):
                mask = gt[t, k].cpu().numpy()
                if not mask.any():  # absent on this frame: an empty mask says so
                    per_object.append(ClipPrompt(None, None, gt[t, k].float()))
                    continue
                p = self.sampler.sample(mask)
                if p.kind == "mask":
                    per_object.append(ClipPrompt(None, None, gt[t, k].float()))
                    continue
                coords, labels = p.points.reshape(-1, 2), p.labels.reshape(-1)
                if p.box is not None:
                    coords = np.concatenate((p.box.reshape(2, 2), coords))
                    labels = np.concatenate((np.array([2, 3]), labels))
                per_object.append(
                    ClipPrompt(
                        torch.as_tensor(coords, dtype=torch.float32, device=gt.device),
                        torch.as_tensor(labels, dtype=torch.int32, device=gt.device),
                        None,
                    )
                )
            prompts[t] = per_object
        return prompts

    def _sample_clip(self) -> tuple[Tensor, Tensor]:
        """A clip's frames ``[T, 3, S, S]`` and masks ``[T, K, S, S]`` with K >= 1 objects
        visible on its first frame."""
        if self.cfg.num_workers > 0:
            if self._clips is None:  # started at the first step (after a resume: fresh clips)
                self._clips = iter(self._loader())
            frames, masks = next(self._clips)
            return frames.to(self.device, non_blocking=True), masks.to(self.device, non_blocking=True)
        return sample_clip_tensors(self.source, self.model.image_size, self.cfg.max_objects, self.rng, self.device)

    def _loader(self) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        stream = ClipStream(self.source, self.model.image_size, cfg.max_objects, cfg.seed, self.step, self.group.rank)
        return torch.utils.data.DataLoader(
            stream,
            batch_size=None,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=2 * cfg.batch_clips,
            persistent_workers=True,
            worker_init_fn=_one_thread,
        )

    def train_step(self) -> dict[str, float]:
        """Sample ``batch_clips`` clips, run them, and take one optimiser step; returns the
        loss terms (means over objects and frames)."""
        cfg, model = self.cfg, self.model
        clips = [self._sample_clip() for _ in range(cfg.batch_clips)]
        images = torch.stack([im for im, _ in clips])  # [N, T, 3, S, S]
        gt = torch.cat([g for _, g in clips], dim=1)  # [T, B, S, S]: the clips' objects in a row
        clip_of = [i for i, (_, g) in enumerate(clips) for _ in range(g.shape[1])]
        frames = [0]
        if cfg.clip_length > 1 and self.rng.random() < cfg.second_prompt_prob:
            frames.append(int(self.rng.integers(1, cfg.clip_length)))
        prompts = self._prompts(gt, frames)

        def correction(t: int, logits: Tensor) -> list:
            pred = F.interpolate(logits.float(), size=gt.shape[-2:], mode="bilinear", align_corners=False)[:, 0] > 0
            return [self.sampler.correction(gt[t, k].cpu().numpy(), pred[k].cpu().numpy()) for k in range(gt.shape[1])]

        lr = self._lr()
        autocast = self.device.type == "cuda" and cfg.amp
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = forward_clip(model, images, prompts, correction, cfg.correction_rounds, clip_of=clip_of)
            terms = {"total": 0.0, "focal": 0.0, "dice": 0.0, "iou": 0.0, "object_score": 0.0}
            total = images.new_zeros(())
            count = 0
            for step in out.steps:
                for k, heads in enumerate(step.objects):
                    logits = F.interpolate(heads.multimask_logits.float(), size=gt.shape[-2:], mode="bilinear")
                    loss = sam2_loss(
                        logits,
                        heads.multimask_iou.float(),
                        heads.object_score_logits.float(),
                        gt[step.frame, k][None].float(),
                        self.weights,
                    )
                    total = total + loss.total
                    count += 1
                    for name in terms:
                        terms[name] += float(getattr(loss, name).detach())
        total = total / max(count, 1)
        self.optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:  # not when every output is a mask prompt taken as it is
            total.backward()
        # with several processes: their mean gradient; False when no process has one
        if average_gradients(model.parameters(), self.group):
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(model)
        self.step += 1
        return {**{k: v / max(count, 1) for k, v in terms.items()}, "lr": lr}

    # ------------------------------------------------------------ the run
    def run(self) -> Path:
        """Train to ``cfg.steps`` (resuming if possible); returns the final checkpoint."""
        cfg, main = self.cfg, self.group.is_main
        last = self.out / "last.pt"
        if last.exists():
            self.resume(last)
            if main:
                print(f"resuming from {last} at step {self.step}", file=sys.stderr)
        log_file = self._open_log() if main else None
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", disable=not main, dynamic_ncols=True)
        try:
            while self.step < cfg.steps:
                t0 = time.monotonic()
                terms = self.train_step()
                sec = time.monotonic() - t0
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    terms = mean_values(terms, self.group, self.device)  # over the processes
                    if log_file is not None:
                        row = [self.step, f"{terms['lr']:.3e}"]
                        row += [f"{terms[k]:.5f}" for k in _LOG_TERMS] + [f"{sec:.3f}"]
                        csv.writer(log_file).writerow(row)
                        log_file.flush()
                        bar.set_postfix(loss=f"{terms['total']:.4f}", refresh=False)
                bar.update(self.step - bar.n)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    check_in_sync(self.model, self.group, self.step)
                    self.save(last)
        finally:
            bar.close()
            if log_file is not None:
                log_file.close()
        final = self.out / "final.pt"
        if self.ema is not None:  # the average is the result; the raw weights stay in last.pt
            self.ema.copy_to(self.model)
        if main:
            save_checkpoint(self.model, final, step=self.step, config=_plain(dataclasses.asdict(cfg)))
        barrier(self.group)  # final.pt exists for every process
        return final

    def _open_log(self) -> TextIO:
        """``out_dir/log.csv`` for appending (with its header if new)."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "log.csv"
        new_log = not path.exists()
        log_file = open(path, "a", newline="")  # noqa: SIM115 (closed by run())
        if new_log:
            csv.writer(log_file).writerow(["step", "lr", *_LOG_TERMS, "seconds_per_step"])
        return log_file


def _one_thread(worker_id: int) -> None:
    """Clip workers use one thread each: they are many, and the training process needs the cores."""
    torch.set_num_threads(1)


def _plain(obj: object) -> object:
    """Only str/int/float/bool/None/lists/dicts (a weights_only-loadable checkpoint)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)
