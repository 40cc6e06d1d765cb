"""``--eval``: J&F per object against DAVIS-layout ground truth, computed as frames come.

The DAVIS 2017 semi-supervised protocol: each object is scored on the frames after its first
frame in the ground truth (the frame it is prompted on; DAVIS: the video's first frame), J
and F with :mod:`sam2_model.eval.metrics` on the written label image (pixel = object id);
J&F per object is the mean of its mean J and mean F over those frames, and the video's J&F
the mean over its objects. Scores are sums, so memory does not grow with the video.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..eval.metrics import SequenceScore, f_measure, jaccard
from .config import TrackError
from .promptfile import read_id_png
from .sources import Selection, SourceInfo

__all__ = ["EvalResult", "StreamingEvaluator", "frame_scores"]


def _crop(a: np.ndarray, b: np.ndarray) -> tuple[slice, slice]:
    """The smallest window holding both masks with one pixel around (clipped to the frame)."""
    rows = np.flatnonzero(a.any(axis=1) | b.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0) | b.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2)


def frame_scores(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> tuple[float, float]:
    """J and F of one object's ``[H, W]`` bool masks, as :func:`jaccard` and :func:`f_measure`
    on the full frame, computed on the window around the masks (same boundary pixels: the
    window keeps a background pixel around them; the match radius is the full frame's)."""
    radius = math.ceil(bound_th * math.hypot(*pred.shape))
    ys, xs = _crop(pred, gt)
    if ys.stop == 0:
        return 1.0, 1.0
    p, g = pred[ys, xs], gt[ys, xs]
    return jaccard(p, g), f_measure(p, g, bound_th=float(max(radius, 1)))


@dataclass
class _Sums:
    j: float = 0.0
    f: float = 0.0
    frames: int = 0


@dataclass
class EvalResult:
    """Scores of one run against its ground truth."""

    objects: dict[int, SequenceScore] = field(default_factory=dict)  # per ground-truth object id
    frames: int = 0  # frames with a ground-truth PNG

    @property
    def j(self) -> float:
        return float(np.mean([s.j for s in self.objects.values()])) if self.objects else math.nan

    @property
    def f(self) -> float:
        return float(np.mean([s.f for s in self.objects.values()])) if self.objects else math.nan

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2

    def write_csv(self, path: Path) -> None:
        """``eval.csv``: one row per object, then the mean over objects."""
        with open(path, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["object", "J&F", "J", "F", "frames"])
            for obj_id, s in sorted(self.objects.items()):
                out.writerow([obj_id, f"{s.jf:.6f}", f"{s.j:.6f}", f"{s.f:.6f}", s.frames])
            out.writerow(["mean", f"{self.jf:.6f}", f"{self.j:.6f}", f"{self.f:.6f}", self.frames])


class StreamingEvaluator:
    """Scores each written label image against ``gt_dir/<frame name>.png`` (frames without
    one are not scored). ``skip_last``: leave out the last scored frame too, as the official
    davis2017-evaluation and vos-benchmark do."""

    def __init__(self, gt_dir: str | Path, info: SourceInfo, selection: Selection, skip_last: bool = False) -> None:
        self.dir = Path(gt_dir).expanduser()
        if not self.dir.is_dir():
            raise TrackError(f"eval: {self.dir} is not a folder")
        names = [info.name(i) for i in range(selection.start, selection.end(info.count), selection.stride)]
        first = next((self.dir / f"{n}.png" for n in names if (self.dir / f"{n}.png").is_file()), None)
        if first is None:
            raise TrackError(
                f"eval: no ground-truth PNG in {self.dir} is named after a processed frame (e.g. {names[0]}.png)"
            )
        gt = read_id_png(first, "eval")
        if gt.shape != (info.height, info.width):
            raise TrackError(f"eval: {first} is {gt.shape[1]}x{gt.shape[0]}, the frames are {info.width}x{info.height}")
        self.skip_last = skip_last
        self._first_seen: dict[int, int] = {}  # object id -> input frame where the ground truth first has it
        self._sums: dict[int, _Sums] = {}
        self._pending: dict[int, tuple[float, float]] = {}  # the latest frame's scores, committed on the next
        self._frames = 0

    def add(self, name: str, index: int, label: np.ndarray) -> None:
        """Score the label image of input frame ``index`` (named ``name``)."""
        path = self.dir / f"{name}.png"
        if not path.is_file():
            return
        gt = read_id_png(path, "eval")
        if gt.shape != label.shape:
            raise TrackError(
                f"eval: {path} is {gt.shape[1]}x{gt.shape[0]}, the frames are {label.shape[1]}x{label.shape[0]}"
            )
        self._commit()
        self._frames += 1
        for obj_id in np.unique(gt):
            self._first_seen.setdefault(int(obj_id), index)
        for obj_id, first in self._first_seen.items():
            if obj_id != 0 and first < index:
                self._pending[obj_id] = frame_scores(label == obj_id, gt == obj_id)

    def _commit(self) -> None:
        for obj_id, (j, f) in self._pending.items():
            s = self._sums.setdefault(obj_id, _Sums())
            s.j, s.f, s.frames = s.j + j, s.f + f, s.frames + 1
        self._pending = {}

    def finish(self) -> EvalResult:
        """The scores; objects that were never scored (seen on one frame only) are left out."""
        if not self.skip_last:
            self._commit()
        objects = {i: SequenceScore(s.j / s.frames, s.f / s.frames, s.frames) for i, s in self._sums.items()}
        return EvalResult(dict(sorted(objects.items())), self._frames)
