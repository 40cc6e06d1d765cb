"""Where a tracker loses touching objects: single frames or memory.

Two measures on held-out synthetic videos, each over the fully visible objects of every
frame after the first, split into objects that touch another ground-truth object (within
``TOUCH_PX`` pixels) and objects that do not:

- ``click``: the image predictor alone, one click inside the object (no memory);
- ``memory``: tracking with perfect memories. Every frame is tracked and scored, then each
  object present on it gets its ground-truth mask as a prompt, so the next frame reads
  memories of true masks only: the one-step error of the memory path, without compounding
  (every frame becomes a prompted frame, as memories are kept for prompts).

    python -m sam2_model.eval.diagnose --checkpoint models/sam2_ros_demo.pt --videos 60
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from ..build import build_sam2
from ..data.synthetic import SyntheticConfig, SyntheticVideo, generate_video
from ..image_predictor import SAM2ImagePredictor
from ..modeling.sam2 import SAM2Model
from ..tracker import SAM2Tracker
from .metrics import jaccard
from .synthetic import click_inside, frame_code, heldout_seed

__all__ = ["TOUCH_PX", "Split", "diagnose_video", "touches"]

TOUCH_PX = 3  # an object touches another when its mask grown by this many pixels meets it


def touches(mask: np.ndarray, others: list[np.ndarray], px: int = TOUCH_PX) -> bool:
    """Whether ``mask`` ``[H, W]`` bool, grown by ``px`` pixels (8-connected), meets any of ``others``."""
    if not mask.any():
        return False
    grown = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=px)
    return any(bool((grown & o).any()) for o in others)


@dataclass
class Split:
    """Scores of one measure: per object-frame IoU and :data:`~.synthetic.FRAME_CODES` code."""

    ious: dict[str, list[float]] = field(default_factory=lambda: {"touch": [], "apart": []})
    codes: dict[str, list[str]] = field(default_factory=lambda: {"touch": [], "apart": []})

    def add(self, key: str, pred: np.ndarray, truth: np.ndarray, others: list[np.ndarray]) -> None:
        """Score ``pred`` against ``truth`` under ``key`` ("touch" or "apart")."""
        self.ious[key].append(jaccard(pred, truth))
        self.codes[key].append(frame_code(pred, truth, others))

    def extend(self, other: Split) -> None:
        for key in self.ious:
            self.ious[key] += other.ious[key]
            self.codes[key] += other.codes[key]

    def summary(self, key: str) -> str:
        ious, codes = np.array(self.ious[key]), self.codes[key]
        if not len(ious):
            return f"{key}: no object-frames"
        share = {c: codes.count(c) / len(codes) for c in "OXM"}
        return (
            f"{key}: {len(ious)} object-frames, mean IoU {ious.mean():.3f}, IoU >= 0.7 {np.mean(ious >= 0.7):.1%}, "
            f"on another object {share['O']:.1%}, elsewhere {share['X']:.1%}, missed {share['M']:.1%}"
        )


def _scored(video: SyntheticVideo, t: int) -> list[tuple[int, list[np.ndarray], str]]:
    """The fully visible objects of frame ``t`` (none on frame 0), each with the other
    objects' true masks and whether it touches one ("touch" or "apart")."""
    if t == 0:
        return []
    ids = video.object_ids
    scored = []
    for i in ids:
        if video.visibility[t][i] == 1.0:
            others = [video.masks[t][j] for j in ids if j != i]
            scored.append((i, others, "touch" if touches(video.masks[t][i], others) else "apart"))
    return scored


@torch.inference_mode()
def diagnose_video(model: SAM2Model, video: SyntheticVideo) -> tuple[Split, Split]:
    """The ``click`` and ``memory`` measures (see the module) on one video."""
    click, memory = Split(), Split()
    predictor = SAM2ImagePredictor(model)
    tracker = SAM2Tracker(model, max_conditioning_frames=max(len(video.frames), 2))
    for t, frame in enumerate(video.frames):
        result = tracker.track(frame)
        scored = _scored(video, t)
        if scored:
            predictor.set_image(frame)
        for i, others, key in scored:
            truth = video.masks[t][i]
            click.add(key, predictor.predict(points=[click_inside(truth)], labels=[1]).mask, truth, others)
            memory.add(key, result.objects[i].mask, truth, others)
        for i in video.object_ids:
            if video.masks[t][i].any():
                tracker.add_prompt(i, mask=video.masks[t][i])
    return click, memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", default="sam2_ros_demo")
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--first", type=int, default=500, help="index of the first held-out video (validation: 500)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    model = build_sam2(args.model, args.checkpoint, device=args.device)
    click, memory = Split(), Split()
    for k in range(args.first, args.first + args.videos):
        c, m = diagnose_video(model, generate_video(heldout_seed(k), SyntheticConfig()))
        click.extend(c)
        memory.extend(m)
    for name, split in (("click (no memory)", click), ("memory (perfect memories)", memory)):
        print(f"{name}:\n  {split.summary('touch')}\n  {split.summary('apart')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
