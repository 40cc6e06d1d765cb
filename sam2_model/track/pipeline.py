"""One offline run: check everything, build the model, then decode, track and write in
three threads (decoding and writing in the background, PyTorch on the calling thread)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..build import build_sam2
from ..modeling.sam2 import SAM2Model
from ..tracker import ObjectResult, SAM2Tracker, TrackerOptions
from .config import DEMO_MODEL, TrackConfig, TrackError, default_checkpoint
from .evaluate import EvalResult, StreamingEvaluator
from .outputs import FrameOutput, ResultWriter
from .prompts import PromptPlan, load_prompts, plan_prompts
from .sources import Frame, FrameSource, Selection, SourceInfo, open_source
from .threads import BackgroundConsumer, Prefetcher

__all__ = ["ObjectSummary", "PreparedRun", "TrackSummary", "build_model", "prepare", "run_tracking"]


@dataclass
class ObjectSummary:
    """One object over the run."""

    label: str  # its label at the end
    first_frame: int  # input frame it was first prompted on
    frames: int  # processed frames it was tracked on (from its first prompt)
    visible: int  # of those, frames where it was not occluded


@dataclass
class TrackSummary:
    """What a run did."""

    source: SourceInfo  # the input
    out: Path  # the output folder
    frames: int  # frames processed
    seconds: float  # wall time of the tracking loop
    tracker_seconds: float  # time spent in the tracker (tracking and prompts)
    objects: dict[int, ObjectSummary] = field(default_factory=dict)  # by object id
    eval: EvalResult | None = None  # scores against --eval ground truth
    out_bag: Path | None = None  # the output bag, when written
    decode_cpu_seconds: float = 0.0  # CPU time of the decoding thread
    write_cpu_seconds: float = 0.0  # CPU time of the writing thread (files, bag, scores)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PreparedRun:
    """A run whose inputs were all checked (nothing written yet)."""

    config: TrackConfig
    source: FrameSource  # the opened input
    selection: Selection  # the frames processed
    plan: PromptPlan  # the prompts by frame
    evaluator: StreamingEvaluator | None  # --eval


def _bag_storage(path: Path) -> str:
    """The storage of an input bag: "mcap" or "sqlite3"."""
    if path.is_dir():
        return "mcap" if any(path.glob("*.mcap")) else "sqlite3"
    return "mcap" if path.suffix.lower() == ".mcap" else "sqlite3"


def prepare(config: TrackConfig) -> PreparedRun:
    """Open the input and check the prompts, the ground truth and the outputs against it."""
    source = open_source(config)
    info = source.info
    selection = Selection(config.start, config.stride, config.max_frames)
    if config.start >= info.count:
        raise TrackError(f"start: {info.path} has {info.count} frames (0..{info.count - 1}), --start is {config.start}")
    if config.out_bag is not None and info.kind != "bag":
        raise TrackError(f"out_bag: only bag inputs can be written to a bag; {info.path} is a {info.kind}")
    specs = load_prompts(config.prompts, config.first_masks, config.masks_dir, info, selection)
    stamps = source.stamps() if any(s.frame is None for s in specs) and hasattr(source, "stamps") else None
    plan = plan_prompts(specs, info, selection, config.tracker.max_objects, stamps)
    evaluator = StreamingEvaluator(config.eval_dir, info, selection, config.eval_skip_last) if config.eval_dir else None
    return PreparedRun(config, source, selection, plan, evaluator)


def build_model(config: TrackConfig) -> SAM2Model:
    """The model named by ``config`` with its checkpoint, on the tracker's device."""
    checkpoint = config.checkpoint
    if checkpoint is None:
        if config.model != DEMO_MODEL:
            raise TrackError(f"checkpoint: --model {config.model} needs --checkpoint FILE")
        checkpoint = str(default_checkpoint())
    if not Path(checkpoint).expanduser().is_file():
        raise TrackError(f"checkpoint: {checkpoint} does not exist")
    device = config.tracker.device or "auto"
    try:
        return build_sam2(config.model, Path(checkpoint).expanduser(), device=device, image_size=config.image_size)
    except (ValueError, RuntimeError, OSError) as err:  # unknown model, checkpoint errors, no GPU
        raise TrackError(f"model: cannot build {config.model} from {checkpoint}: {err}") from err


def _options(options: TrackerOptions) -> dict[str, object]:
    return {f.name: getattr(options, f.name) for f in fields(options)}


def label_map(objects: dict[int, ObjectResult], image_hw: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8 object ids, the higher id where masks overlap (as the tracker's label image)."""
    label = np.zeros(image_hw, dtype=np.uint8)
    for obj_id in sorted(objects):
        label[objects[obj_id].mask] = obj_id
    return label


class _Loop:
    """The tracking loop's state: the tracker, the labels and the per-object counts."""

    def __init__(self, run: PreparedRun, tracker: SAM2Tracker) -> None:
        self.run, self.tracker = run, tracker
        self.labels: dict[int, str] = {}
        self.objects: dict[int, ObjectSummary] = {}
        self.tracker_seconds = 0.0
        self.frames = 0  # frames processed
        self.last_frame = -1  # the last processed input frame

    def step(self, frame: Frame) -> FrameOutput:
        """Track one frame and apply its prompts."""
        start = time.perf_counter()
        result = self.tracker.track(frame.image)
        objects, label = result.objects, result.label_image
        prompts = self.run.plan.by_frame.get(frame.index, [])
        if prompts:
            objects = dict(objects)
            for p in prompts:
                try:
                    objects[p.obj_id] = self.tracker.add_prompt(
                        p.obj_id,
                        points=p.points,
                        labels=p.labels,
                        box=p.box,
                        mask=p.mask,
                        clear_previous=p.clear_previous,
                    )
                except ValueError as err:
                    raise TrackError(f"prompts: {p.where}: {err}") from err
                if p.label or p.obj_id not in self.labels:
                    self.labels[p.obj_id] = p.label
                self.objects.setdefault(p.obj_id, ObjectSummary("", frame.index, 0, 0))
            label = label_map(objects, frame.image.shape[:2])
        seconds = time.perf_counter() - start
        self.tracker_seconds += seconds
        self.frames, self.last_frame = self.frames + 1, frame.index
        for obj_id, o in objects.items():
            s = self.objects[obj_id]
            s.frames, s.visible, s.label = s.frames + 1, s.visible + (not o.occluded), self.labels[obj_id]
        return FrameOutput(frame, result.frame_index, objects, label, dict(self.labels), seconds)


def _progress(total: int, enabled: bool) -> tqdm:
    return tqdm(total=total, unit="frame", disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def run_tracking(config: TrackConfig, model: SAM2Model | None = None) -> TrackSummary:
    """Run the tracker over ``config.input`` and write the outputs (see :mod:`sam2_model.track`).

    Args:
        model: the model to track with; ``None``: build ``config.model`` from its checkpoint.
    Raises:
        TrackError: bad input, named, before any work (or, for a video whose frame count
            was an estimate, when it ends before a prompted frame).
    """
    run = prepare(config)
    info = run.source.info
    model = model if model is not None else build_model(config)
    tracker = SAM2Tracker(model, **_options(config.tracker))
    bag = None
    if config.out_bag is not None:
        from .bagout import BagOutput

        storage = config.out_bag_storage or _bag_storage(info.path)
        bag = BagOutput(config.out_bag, storage, config.node_name, config.overwrite)
    writer = ResultWriter(config, info, run.evaluator, bag)
    loop = _Loop(run, tracker)
    start = time.perf_counter()
    bar = _progress(run.selection.planned(info.count), config.progress)
    decode = Prefetcher(run.source.frames(run.selection), config.queue_frames)
    write = BackgroundConsumer(writer.write, writer.close, config.queue_frames)
    try:
        for frame in decode:
            write.put(loop.step(frame))
            bar.update(1)
            bar.set_postfix(objects=len(loop.objects), refresh=False)
    except BaseException:
        with contextlib.suppress(Exception):
            write.close()
        raise
    else:
        write.close()
    finally:
        decode.close()
        bar.close()
    seconds = time.perf_counter() - start
    late = [p for f, ps in run.plan.by_frame.items() if f > loop.last_frame for p in ps]
    if late:
        raise TrackError(
            f"prompts: {late[0].where}: the input ended at frame {loop.last_frame}, before frame {late[0].frame} "
            "(the video's frame count was an estimate); the outputs hold the frames before"
        )
    scores = run.evaluator.finish() if run.evaluator is not None else None
    if scores is not None:
        scores.write_csv(writer.out / "eval.csv")
    out_bag = bag.path if bag is not None else None
    summary = TrackSummary(info, writer.out, loop.frames, seconds, loop.tracker_seconds, loop.objects, scores, out_bag)
    summary.decode_cpu_seconds, summary.write_cpu_seconds = decode.cpu_seconds, write.cpu_seconds
    return summary
