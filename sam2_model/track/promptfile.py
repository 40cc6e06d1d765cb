"""Prompts from a YAML or JSON file, and DAVIS annotation PNGs as mask prompts.

A prompts file is a list (or a mapping with a ``prompts:`` list) of prompts::

    - frame: 0            # input frame index (bags: or `stamp: 1700000000.25`, header stamp in s)
      id: 1               # object id 1..255: a new id starts an object, a known id refines it
      label: cup          # optional
      points: [[120, 80], [140, 90]]
      labels: [1, 0]      # optional: 1 on the object (default), 0 not on it
      box: [100, 60, 180, 130]      # x0, y0, x1, y1 pixels
      mask: masks/cup.png           # non-zero on the object; relative to this file
      clear_previous: false         # drop the object's earlier prompts on that frame first

Every problem is a :class:`TrackError` naming the file, line and field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NoReturn

import numpy as np
from PIL import Image

from .config import TrackError

__all__ = ["MAX_OBJECT_ID", "PromptSpec", "load_prompts_file", "read_id_png"]

MAX_OBJECT_ID = 255  # ids are pixel values of 8-bit palette PNGs
Fail = Callable[[str], NoReturn]  # raises a TrackError about one field
_FIELDS = ("frame", "stamp", "id", "label", "points", "labels", "box", "mask", "clear_previous")


@dataclass(frozen=True)
class PromptSpec:
    """One prompt, parsed (its pixels are checked against the frames later)."""

    where: str  # where it comes from, for messages: "prompts.yaml line 7 (prompt 2)"
    obj_id: int  # object id, 1..255
    frame: int | None  # input frame index; None until a stamp is resolved
    stamp_ns: int | None = None  # bag header stamp it was given by, in nanoseconds
    label: str = ""  # the object's label ("" keeps the current one)
    points: np.ndarray | None = None  # [N, 2] clicks (x, y) in pixels
    labels: np.ndarray | None = None  # [N] 1 on the object, 0 not on it
    box: np.ndarray | None = None  # [4] x0, y0, x1, y1 in pixels
    mask: np.ndarray | None = None  # [H, W] bool
    clear_previous: bool = False  # drop the object's earlier prompts on that frame first
    mask_path: str = ""  # the mask image it was read from ("" for DAVIS masks)

    @property
    def refines_only(self) -> bool:
        """Only negative clicks: it can refine an existing object, not start one."""
        has_positive = self.labels is not None and bool(np.any(self.labels == 1))
        return self.box is None and self.mask is None and not has_positive


def read_id_png(path: Path, what: str) -> np.ndarray:
    """A palette ("P") or grayscale PNG as an ``[H, W]`` uint8 object-id map."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L", "1"):
                raise TrackError(f"{what}: {path} is a {image.mode!r} image; expected a palette or grayscale PNG")
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, TrackError):
            raise
        raise TrackError(f"{what}: cannot read {path}: {err}") from err


class _Items:
    """The parsed file with each prompt's and field's line, for messages."""

    def __init__(self, path: Path) -> None:
        import yaml

        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise TrackError(f"prompts: cannot read {path}: {err}") from err
        if path.suffix.lower() == ".json":
            try:
                json.loads(text)
            except json.JSONDecodeError as err:
                raise TrackError(f"prompts: {path} line {err.lineno} column {err.colno}: {err.msg}") from err
        self.loader = yaml.SafeLoader(text)
        try:
            root = self.loader.get_single_node()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            raise TrackError(f"prompts: {path}{at}: {getattr(err, 'problem', None) or err}") from err
        if isinstance(root, yaml.MappingNode):
            found = [v for k, v in root.value if k.value == "prompts"]
            if not found:
                raise TrackError(f"prompts: {path} line {root.start_mark.line + 1}: expected a list or `prompts:`")
            root = found[0]
        if not isinstance(root, yaml.SequenceNode):
            raise TrackError(f"prompts: {path}: expected a list of prompts")
        self.nodes = root.value

    def line(self, node: object) -> int:
        return node.start_mark.line + 1

    def fields(self, k: int) -> dict[str, tuple[object, object]]:
        """Prompt ``k``'s fields: name -> (value, YAML node)."""
        import yaml

        item = self.nodes[k]
        if not isinstance(item, yaml.MappingNode):
            raise TrackError(f"prompts: {self.path} line {self.line(item)}: prompt {k + 1} is not a mapping")
        out = {}
        for key, value in item.value:
            name = str(key.value)
            if name not in _FIELDS:
                raise TrackError(
                    f"prompts: {self.path} line {self.line(key)}: prompt {k + 1}: unknown field {name!r} "
                    f"(fields: {', '.join(_FIELDS)})"
                )
            out[name] = (self.loader.construct_object(value, deep=True), value)
        return out


def _numbers(value: object, shape: str, fail: Fail) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        fail(f"expected {shape} of numbers, got {value!r}")
    if arr.dtype == object or not np.all(np.isfinite(arr)):
        fail(f"expected {shape} of finite numbers, got {value!r}")
    return arr


def _stamp_ns(node: object, fail: Fail) -> int:
    try:
        seconds = Decimal(str(node.value))
    except (InvalidOperation, AttributeError):
        fail(f"expected seconds (e.g. 1700000000.25), got {getattr(node, 'value', node)!r}")
    if not seconds.is_finite() or seconds < 0:
        fail(f"expected non-negative seconds, got {node.value!r}")
    return int(seconds * 1_000_000_000)


def _spec(items: _Items, k: int) -> PromptSpec:
    fields = items.fields(k)
    start = items.line(items.nodes[k])
    where = f"{items.path.name} line {start} (prompt {k + 1})"

    def fail_for(name: str) -> Fail:
        line = items.line(fields[name][1]) if name in fields else start

        def fail(message: str) -> NoReturn:
            raise TrackError(f"prompts: {items.path} line {line}, prompt {k + 1}, field '{name}': {message}")

        return fail

    value = {name: v for name, (v, _) in fields.items()}
    obj_id = value.get("id")
    if isinstance(obj_id, bool) or not isinstance(obj_id, int) or not 1 <= obj_id <= MAX_OBJECT_ID:
        fail_for("id")(f"expected an object id 1..{MAX_OBJECT_ID}, got {obj_id!r}")
    frame = value.get("frame")
    if ("frame" in value) == ("stamp" in value):
        fail_for("frame")("give exactly one of frame (input frame index) and stamp (bag header stamp, seconds)")
    if "frame" in value and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
        fail_for("frame")(f"expected a frame index >= 0, got {frame!r}")
    stamp = _stamp_ns(fields["stamp"][1], fail_for("stamp")) if "stamp" in value else None
    label = value.get("label", "")
    if not isinstance(label, (str, int, float)) or isinstance(label, bool):
        fail_for("label")(f"expected text, got {label!r}")
    points = labels = box = mask = None
    if "points" in value:
        pts = _numbers(value["points"], "[[x, y], ...]", fail_for("points"))
        if pts.ndim > 2 or pts.size % 2 or (pts.ndim == 2 and pts.shape[1] != 2):
            fail_for("points")(f"expected [[x, y], ...], got {value['points']!r}")
        points = pts.reshape(-1, 2)
        labels = np.ones(len(points), dtype=np.int32)
    if "labels" in value:
        if points is None:
            fail_for("labels")("labels need points")
        labels = _numbers(value["labels"], "a list", fail_for("labels")).reshape(-1)
    if "box" in value:
        box = _numbers(value["box"], "[x0, y0, x1, y1]", fail_for("box")).reshape(-1)
    if "mask" in value:
        mask_path = items.path.parent / str(value["mask"])
        mask = read_id_png_any(mask_path, fail_for("mask"))
    clear = value.get("clear_previous", False)
    if not isinstance(clear, bool):
        fail_for("clear_previous")(f"expected true or false, got {clear!r}")
    if points is None and box is None and mask is None:
        fail_for("points")("give at least one of points, box or mask")
    mask_path = str(items.path.parent / str(value["mask"])) if "mask" in value else ""
    return PromptSpec(where, obj_id, frame, stamp, str(label), points, labels, box, mask, clear, mask_path)


def read_id_png_any(path: Path, fail: Fail) -> np.ndarray:
    """A mask image (any mode: non-zero on the object) as ``[H, W]`` bool."""
    try:
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image if image.mode in ("P", "L", "1") else image.convert("L"))
    except (OSError, SyntaxError, ValueError) as err:
        fail(f"cannot read mask image {path}: {err}")
    return pixels != 0


def load_prompts_file(path: str | Path) -> list[PromptSpec]:
    """Parse a prompts file (YAML or JSON, see the module) and load its mask images."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrackError(f"prompts: {path} does not exist or is not a file")
    items = _Items(path)
    if not items.nodes:
        raise TrackError(f"prompts: {path} holds no prompt")
    return [_spec(items, k) for k in range(len(items.nodes))]
