"""All prompts of a run, checked against the input before any work: stamps resolved to
frames, frames processed, pixels inside the frames, object ids started before they are refined."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..prompts import validate_prompt
from .config import TrackError
from .promptfile import PromptSpec, load_prompts_file, read_id_png
from .sources import Selection, SourceInfo, format_stamp

__all__ = ["PromptPlan", "davis_prompts", "load_prompts", "plan_prompts"]


@dataclass
class PromptPlan:
    """The prompts of a run by processed frame."""

    by_frame: dict[int, list[PromptSpec]] = field(default_factory=dict)  # input frame index -> prompts, in order
    object_ids: list[int] = field(default_factory=list)  # every prompted id, increasing

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_frame.values())

    @property
    def last_frame(self) -> int:
        """The last prompted input frame (-1 without prompts)."""
        return max(self.by_frame, default=-1)


def _mask_prompts(ids: np.ndarray, frame: int, where: str) -> list[PromptSpec]:
    return [PromptSpec(where, int(i), frame, mask=ids == i) for i in np.unique(ids) if i != 0]


def _check_size(ids: np.ndarray, info: SourceInfo, what: str, path: Path) -> None:
    if ids.shape != (info.height, info.width):
        raise TrackError(
            f"{what}: {path} is {ids.shape[1]}x{ids.shape[0]}, the frames of {info.path} are {info.width}x{info.height}"
        )


def davis_prompts(
    first_masks: str | None, masks_dir: str | None, info: SourceInfo, selection: Selection
) -> list[PromptSpec]:
    """DAVIS semi-supervised prompts: each object's mask on the first processed frame where
    it appears (``first_masks``: one PNG for the first processed frame; ``masks_dir``: PNGs
    named after the frames, e.g. ``00000.png``)."""
    if first_masks is not None:
        path = Path(first_masks).expanduser()
        ids = read_id_png(path, "first_masks")
        _check_size(ids, info, "first_masks", path)
        prompts = _mask_prompts(ids, selection.start, f"first mask {path.name}")
        if not prompts:
            raise TrackError(f"first_masks: {path} has no object (every pixel is 0)")
        return prompts
    if masks_dir is None:
        return []
    folder = Path(masks_dir).expanduser()
    if not folder.is_dir():
        raise TrackError(f"masks_dir: {folder} is not a folder")
    seen: set[int] = set()
    prompts, matched = [], 0
    for index in range(selection.start, selection.end(info.count), selection.stride):
        path = folder / f"{info.name(index)}.png"
        if not path.is_file():
            continue
        matched += 1
        ids = read_id_png(path, "masks_dir")
        _check_size(ids, info, "masks_dir", path)
        new = [p for p in _mask_prompts(ids, index, f"mask {path.name}") if p.obj_id not in seen]
        seen.update(p.obj_id for p in new)
        prompts += new
    if not matched:
        raise TrackError(
            f"masks_dir: no PNG in {folder} is named after a processed frame "
            f"(expected e.g. {info.name(selection.start)}.png)"
        )
    return prompts


def _resolve_stamps(specs: list[PromptSpec], stamps: Iterable[tuple[int, int]], info: SourceInfo) -> list[PromptSpec]:
    """Bag prompts given by stamp -> the frame with the nearest header stamp (within half a frame)."""
    wanted = [s for s in specs if s.frame is None]
    if not wanted:
        return specs
    best: dict[int, tuple[int, int]] = {}  # id(spec) -> (|difference| ns, frame)
    for index, stamp in stamps:
        for s in wanted:
            d = abs(stamp - s.stamp_ns)
            if id(s) not in best or d < best[id(s)][0]:
                best[id(s)] = (d, index)
    tolerance = int(0.5e9 / info.fps) if info.fps else 1_000_000
    out = []
    for s in specs:
        if s.frame is None:
            d, index = best[id(s)]
            if d > tolerance:
                raise TrackError(
                    f"prompts: {s.where}: stamp {format_stamp(s.stamp_ns)} matches no frame; the nearest, frame "
                    f"{index}, is {d / 1e6:.3f} ms away (tolerance {tolerance / 1e6:.3f} ms, half a frame)"
                )
            s = replace(s, frame=index)
        out.append(s)
    return out


def _check_frame(s: PromptSpec, info: SourceInfo, selection: Selection) -> None:
    if s.frame >= info.count:
        raise TrackError(
            f"prompts: {s.where}: frame {s.frame} is beyond the input ({info.count} frames: 0..{info.count - 1})"
        )
    if not selection.contains(s.frame):
        raise TrackError(
            f"prompts: {s.where}: {info.describe_frame(s.frame)} is not processed with {selection.describe()}"
        )


def plan_prompts(
    specs: list[PromptSpec],
    info: SourceInfo,
    selection: Selection,
    max_objects: int,
    stamps: Iterator[tuple[int, int]] | None = None,
) -> PromptPlan:
    """Check every prompt against the input and order them by frame.

    Args:
        specs: parsed prompts, in file order.
        stamps: ``(frame, stamp ns)`` of every input frame (bags), to resolve prompts given by stamp.
    """
    if any(s.frame is None for s in specs):
        if stamps is None:
            raise TrackError(f"prompts: {next(s for s in specs if s.frame is None).where}: only bags have stamps")
        specs = _resolve_stamps(specs, stamps, info)
    plan, known = PromptPlan(), set()
    for s in sorted(specs, key=lambda s: s.frame):  # stable: file order within a frame
        _check_frame(s, info, selection)
        if s.mask is not None and s.mask.shape != (info.height, info.width):
            raise TrackError(
                f"prompts: {s.where}: mask {s.mask_path} is {s.mask.shape[1]}x{s.mask.shape[0]}, "
                f"the frames of {info.path} are {info.width}x{info.height}"
            )
        try:
            validate_prompt((info.height, info.width), s.points, s.labels, s.box, s.mask)
        except ValueError as err:
            raise TrackError(f"prompts: {s.where}: {err}") from err
        if s.refines_only and s.obj_id not in known:
            raise TrackError(
                f"prompts: {s.where}: object {s.obj_id} is unknown on frame {s.frame}: negative clicks alone refine "
                "an object, start it first (a positive click, a box or a mask on this or an earlier frame)"
            )
        known.add(s.obj_id)
        if len(known) > max_objects:
            raise TrackError(f"prompts: {s.where}: object {s.obj_id} is more than max_objects={max_objects}")
        plan.by_frame.setdefault(s.frame, []).append(s)
    plan.object_ids = sorted(known)
    return plan


def load_prompts(
    prompts_file: str | None, first_masks: str | None, masks_dir: str | None, info: SourceInfo, selection: Selection
) -> list[PromptSpec]:
    """The run's prompts: the file's, then the DAVIS masks' (a TrackError when there are none)."""
    specs = load_prompts_file(prompts_file) if prompts_file else []
    specs += davis_prompts(first_masks, masks_dir, info, selection)
    if not specs:
        raise TrackError("prompts: nothing to track; give --prompts FILE, --first-masks PNG or --masks-dir DIR")
    return specs
