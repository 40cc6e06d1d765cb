"""Held-out evaluation on synthetic video: one click per object on the first frame, then
tracking; J&F per object and the accuracy of the occlusion flag.

Training draws even seeds only (`sam2_model.training.data`); evaluation uses odd seeds, so
evaluated videos are never seen in training.

    python -m sam2_model.eval --checkpoint models/sam2_ros_demo.pt --videos 30
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from ..build import build_sam2
from ..data.synthetic import SyntheticConfig, SyntheticVideo, generate_video
from ..modeling.sam2 import SAM2Model
from ..tracker import SAM2Tracker
from .metrics import SequenceScore, jaccard, score_sequence

__all__ = [
    "FRAME_CODES",
    "EvalReport",
    "VideoReport",
    "click_inside",
    "evaluate",
    "evaluate_video",
    "frame_code",
    "heldout_seed",
    "main",
]

# one character per object and frame in a timeline (see frame_code)
FRAME_CODES = {
    "o": "visible, IoU >= 0.7",
    "~": "visible, 0.3 <= IoU < 0.7",
    "O": "visible, IoU < 0.3, the mask mostly on other tracked objects",
    "X": "visible, IoU < 0.3, the mask elsewhere (distractor or background)",
    "M": "visible, empty mask (missed)",
    ".": "hidden, empty mask",
    "H": "hidden, a mask anyway",
}


def heldout_seed(k: int) -> int:
    """The k-th held-out video's seed (odd; training uses even seeds)."""
    return 2 * k + 1


def click_inside(mask: np.ndarray) -> tuple[float, float]:
    """A click well inside the mask: the pixel farthest from its boundary (chessboard
    distance), ties broken by the lowest index. ``(x, y)`` pixels."""
    dist = mask.astype(np.int32)
    inner = mask.copy()
    while True:  # peel the mask one layer at a time
        p = np.pad(inner, 1)
        inner = (
            inner
            & p[:-2, 1:-1]
            & p[2:, 1:-1]
            & p[1:-1, :-2]
            & p[1:-1, 2:]
            & p[:-2, :-2]
            & p[2:, 2:]
            & p[:-2, 2:]
            & p[2:, :-2]
        )
        if not inner.any():
            break
        dist += inner
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def frame_code(pred: np.ndarray, truth: np.ndarray, others: list[np.ndarray]) -> str:
    """How one object's mask fares on one frame, as one of :data:`FRAME_CODES`.

    Args:
        pred, truth: the predicted and true ``[H, W]`` bool masks of the object.
        others: the true masks of the other tracked objects on that frame.
    """
    if not truth.any():
        return "H" if pred.any() else "."
    area = int(pred.sum())
    if area == 0:
        return "M"
    iou = jaccard(pred, truth)
    if iou >= 0.7:
        return "o"
    if iou >= 0.3:
        return "~"
    on_others = sum(int((pred & m).sum()) for m in others)
    return "O" if on_others > area / 2 else "X"


@dataclass
class VideoReport:
    """One video's results."""

    seed: int
    scores: dict[int, SequenceScore]  # per object
    occlusion_correct: int  # frames (fully hidden or fully visible) with the right flag
    occlusion_frames: int  # such frames
    timelines: dict[int, str] = field(default_factory=dict)  # per object: a FRAME_CODES character per frame


@dataclass
class EvalReport:
    """Results over the held-out videos."""

    videos: list[VideoReport] = field(default_factory=list)

    @property
    def jf(self) -> float:
        """Mean J&F over all objects of all videos."""
        return float(np.mean([s.jf for v in self.videos for s in v.scores.values()]))

    @property
    def j(self) -> float:
        return float(np.mean([s.j for v in self.videos for s in v.scores.values()]))

    @property
    def f(self) -> float:
        return float(np.mean([s.f for v in self.videos for s in v.scores.values()]))

    def frame_counts(self) -> dict[str, int]:
        """Frames after the first, over all objects, per :data:`FRAME_CODES` character."""
        counts = dict.fromkeys(FRAME_CODES, 0)
        for v in self.videos:
            for line in v.timelines.values():
                for c in line[1:]:
                    counts[c] += 1
        return counts

    @property
    def occlusion_accuracy(self) -> float:
        frames = sum(v.occlusion_frames for v in self.videos)
        return sum(v.occlusion_correct for v in self.videos) / frames if frames else 1.0


def evaluate_video(model: SAM2Model, video: SyntheticVideo, seed: int = -1) -> VideoReport:
    """Click each object once on frame 0, track the video, score it."""
    tracker = SAM2Tracker(model)
    preds: dict[int, list[np.ndarray]] = {i: [] for i in video.object_ids}
    correct = total = 0
    with torch.inference_mode():
        for t, frame in enumerate(video.frames):
            result = tracker.track(frame)
            if t == 0:
                for obj_id in video.object_ids:
                    answer = tracker.add_prompt(obj_id, points=[click_inside(video.masks[0][obj_id])], labels=[1])
                    preds[obj_id].append(answer.mask)
                continue
            for obj_id in video.object_ids:
                o = result.objects[obj_id]
                preds[obj_id].append(o.mask)
                vis = video.visibility[t][obj_id]
                if vis == 0.0 or vis == 1.0:
                    total += 1
                    correct += int(o.occluded == (vis == 0.0))
    ids = video.object_ids
    scores = {i: score_sequence(preds[i], [m[i] for m in video.masks]) for i in ids}
    timelines = {
        i: "".join(
            frame_code(p, truth[i], [truth[j] for j in ids if j != i]) for p, truth in zip(preds[i], video.masks)
        )
        for i in ids
    }
    return VideoReport(seed, scores, correct, total, timelines)


def evaluate(
    model: SAM2Model, num_videos: int = 30, config: SyntheticConfig | None = None, first: int = 0
) -> EvalReport:
    """Evaluate on ``num_videos`` held-out synthetic videos from the ``first``-th (default
    settings). The README's numbers are the first 30; choose models on others (``first=500``)."""
    config = config or SyntheticConfig()
    report = EvalReport()
    for k in range(first, first + num_videos):
        seed = heldout_seed(k)
        report.videos.append(evaluate_video(model, generate_video(seed, config), seed))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", default="sam2_ros_demo")
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--first", type=int, default=0, help="index of the first held-out video (validation: 500, reported: 0)"
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print each object's frames, one character each: "
        + ", ".join(f"{c} {what}" for c, what in FRAME_CODES.items()),
    )
    args = parser.parse_args(argv)
    model = build_sam2(args.model, args.checkpoint, device=args.device)
    report = evaluate(model, args.videos, first=args.first)
    for v in report.videos:
        per_object = " ".join(f"{i}:{s.jf:.3f}" for i, s in v.scores.items())
        print(f"video seed {v.seed}: J&F {per_object}")
        if args.timeline:
            for i, line in v.timelines.items():
                print(f"    object {i}: {line}")
    print(
        f"\n{len(report.videos)} videos: J {report.j:.3f}  F {report.f:.3f}  J&F {report.jf:.3f}  "
        f"occlusion flag {report.occlusion_accuracy:.1%} correct"
    )
    if args.timeline:
        counts = report.frame_counts()
        total = max(sum(counts.values()), 1)
        for c, n in counts.items():
            print(f"  {c} {n / total:6.1%}  {FRAME_CODES[c]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
