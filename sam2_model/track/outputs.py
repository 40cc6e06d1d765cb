"""The files of a run: ``masks/<frame>.png`` (DAVIS palette PNGs, pixel = object id),
``tracks.csv``, ``overlay.mp4``, the output bag, and the scores against ground truth."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.davis import davis_palette
from ..geometry import DepthSettings, ObjectGeometry, frame_geometry
from ..tracker import ObjectResult
from .bagout import BagOutput
from .config import TrackConfig, TrackError
from .evaluate import StreamingEvaluator
from .overlay import render_overlay
from .sources import Frame, SourceInfo, format_stamp

__all__ = ["CSV_COLUMNS", "DEPTH_COLUMNS", "FrameOutput", "ResultWriter", "check_out_dir"]

# tracks.csv: one row per object and frame; stamp in seconds (bags: header stamp; videos:
# position; folders: empty); bbox inclusive pixels (empty when the mask is); score: the
# probability that the object is visible; iou: the predicted mask quality
CSV_COLUMNS = ("frame", "name", "stamp", "id", "label", "x0", "y0", "x1", "y1", "area", "score", "iou", "occluded")
# with --depth-topic: metres in the colour camera's optical frame (empty when the object has
# no position: hidden, too few valid depth pixels, or no depth paired with the frame)
DEPTH_COLUMNS = ("position_x", "position_y", "position_z", "size_x", "size_y", "size_z")
_OUTPUTS = ("tracks.csv", "overlay.mp4", "eval.csv")


@dataclass
class FrameOutput:
    """Everything written for one processed frame."""

    frame: Frame  # the input frame
    frame_index: int  # the tracker's index of the frame (counts processed frames)
    objects: dict[int, ObjectResult]  # by object id, after the frame's prompts
    label_image: np.ndarray  # [H, W] uint8 object ids (the higher id where masks overlap)
    labels: dict[int, str]  # object labels as of this frame
    seconds: float  # time the tracker spent on the frame (tracking and prompts)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """The output folder must not hold an earlier run's results (they would mix), unless
    ``overwrite``: then they are removed first."""
    if out.exists() and not out.is_dir():
        raise TrackError(f"out: {out} is a file, not a folder")
    masks = out / "masks"
    old = [out / n for n in _OUTPUTS if (out / n).is_file()]
    old += sorted(masks.glob("*.png")) if masks.is_dir() else []
    if old and not overwrite:
        raise TrackError(f"out: {out} holds an earlier run's results ({old[0]}); choose another folder or --overwrite")
    for path in old:
        path.unlink()
    masks.mkdir(parents=True, exist_ok=True)


def _stamp(frame: Frame) -> str:
    return "" if frame.stamp_ns is None else format_stamp(frame.stamp_ns)


def _csv_row(out: FrameOutput, o: ObjectResult, geometry: dict[int, ObjectGeometry] | None) -> list:
    box = list(o.bbox) if o.bbox is not None else ["", "", "", ""]
    score = 1.0 / (1.0 + math.exp(-max(min(o.object_score, 60.0), -60.0)))
    f = out.frame
    label = out.labels.get(o.obj_id, "")
    row = [f.index, f.name, _stamp(f), o.obj_id, label, *box, o.area, f"{score:.4f}", f"{o.iou:.4f}", int(o.occluded)]
    if geometry is None:  # no depth topic
        return row
    g = geometry.get(o.obj_id)
    if g is None or g.position is None:
        return row + [""] * len(DEPTH_COLUMNS)
    return row + [f"{v:.4f}" for v in (*g.position, *g.size)]


class ResultWriter:
    """Writes every :class:`FrameOutput` (call :meth:`close` at the end)."""

    def __init__(
        self,
        config: TrackConfig,
        info: SourceInfo,
        evaluator: StreamingEvaluator | None = None,
        bag: BagOutput | None = None,
    ) -> None:
        self.out = Path(config.out).expanduser()
        check_out_dir(self.out, config.overwrite)
        self.palette = davis_palette().reshape(-1).tolist()
        self._csv_file = open(self.out / "tracks.csv", "w", newline="")  # noqa: SIM115 (closed by close())
        self._csv = csv.writer(self._csv_file)
        self._depth = config.depth_topic is not None
        self._csv.writerow(CSV_COLUMNS + (DEPTH_COLUMNS if self._depth else ()))
        self._video = None
        if config.video:
            import cv2

            fps = config.fps or info.fps or 15.0
            path = self.out / "overlay.mp4"
            self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (info.width, info.height))
            if not self._video.isOpened():
                raise TrackError(f"out: OpenCV cannot write {path} (no mp4v encoder?); use --no-video")
        self.evaluator = evaluator
        self.bag = bag
        self.frames = 0

    def write(self, out: FrameOutput) -> None:
        """Write one frame's results (called in the writer thread, in frame order)."""
        label = out.label_image
        png = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
        png.putpalette(self.palette)
        png.save(self.out / "masks" / f"{out.frame.name}.png", compress_level=1)
        geometry = None
        if self._depth:  # positions from the paired depth (none for a frame without one)
            d = out.frame.depth
            geometry = frame_geometry(out.objects, d.metres, d.intrinsics, DepthSettings()) if d is not None else {}
        self._csv.writerows(_csv_row(out, out.objects[i], geometry) for i in sorted(out.objects))
        if self._video is not None:
            import cv2

            overlay = render_overlay(out.frame.image, label, out.objects, out.labels)
            self._video.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        if self.bag is not None:
            self.bag.write(
                out.frame.record, out.frame_index, out.objects, label, out.labels, out.seconds * 1e3, geometry
            )
        if self.evaluator is not None:
            self.evaluator.add(out.frame.name, out.frame.index, label)
        self.frames += 1

    def close(self) -> None:
        """Close the files (in the writer thread: the output bag's sqlite3 lives there)."""
        self._csv_file.close()
        if self._video is not None:
            self._video.release()
        if self.bag is not None:
            self.bag.close()
