"""The overlay image people watch in RViz: masks tinted per object, boxes, ids and labels,
and a mark on occluded objects (no ROS import)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sam2_model import ObjectResult
from sam2_model.colours import ALPHA, object_colour

__all__ = ["object_colour", "overlay_text", "render_overlay"]

CHAR_PX = 6  # width of a character of the default font, about: bounds a text line


def overlay_text(obj_id: int, label: str, suffix: str, width: int) -> str:
    """``"id label"`` + ``suffix``, cut to one line of an image ``width`` pixels wide (labels
    are free text from clients: the full label stays in the messages)."""
    text = f"{obj_id} {label[: width // CHAR_PX + 1]}".strip() + suffix
    limit = max(width // CHAR_PX, 4)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_overlay(image: np.ndarray, objects: dict[int, ObjectResult], labels: dict[int, str]) -> np.ndarray:
    """``image [H, W, 3]`` RGB + results -> a new ``[H, W, 3]`` RGB uint8 overlay.

    Visible objects: tinted mask, box and ``id label``; occluded ones (their mask is empty):
    the text ``id label: occluded`` in the top-left corner, in the object's colour. Only the
    pixels drawn on are touched: the cost follows the objects' size, not the frame's.
    """
    out = np.array(image, dtype=np.uint8)  # a copy: the input may be the message's read-only bytes
    width = out.shape[1]
    font = ImageFont.load_default()
    occluded_row = 2
    for obj_id in sorted(objects):
        o = objects[obj_id]
        colour = object_colour(obj_id)
        label = labels.get(obj_id, "")
        if o.occluded or o.bbox is None:
            _draw_text(out, (4, occluded_row), overlay_text(obj_id, label, ": occluded", width), colour, font)
            occluded_row += 12
            continue
        x0, y0, x1, y1 = o.bbox
        region, inside = out[y0 : y1 + 1, x0 : x1 + 1], o.mask[y0 : y1 + 1, x0 : x1 + 1]  # views of the box
        tinted = ((1 - ALPHA) * region + ALPHA * np.array(colour, np.float32)).astype(np.uint8)
        region[...] = np.where(inside[:, :, None], tinted, region)  # [h, w, 3]: mask broadcast over RGB
        _draw_box(region, colour)
        _draw_text(out, (x0 + 2, max(y0 - 12, 0)), overlay_text(obj_id, label, "", width - x0), colour, font)
    return out


def _draw_box(region: np.ndarray, colour: tuple[int, int, int], thickness: int = 2) -> None:
    """The outline of ``region [h, w, 3]`` (a view of the box) in ``colour``, ``thickness``
    pixels wide, inside it."""
    region[:thickness] = colour
    region[-thickness:] = colour
    region[:, :thickness] = colour
    region[:, -thickness:] = colour


def _draw_text(out: np.ndarray, xy: tuple[int, int], text: str, colour: tuple[int, int, int], font) -> None:
    """``text`` at ``xy`` on ``out [H, W, 3]``, drawn by PIL on the patch it covers only."""
    _, _, right, bottom = font.getbbox(text)
    x, y = xy
    x1, y1 = min(x + right + 1, out.shape[1]), min(y + bottom + 1, out.shape[0])
    if x >= x1 or y >= y1:
        return
    patch = Image.fromarray(out[y:y1, x:x1])  # a copy of the patch
    ImageDraw.Draw(patch).text((0, 0), text, fill=colour, font=font)
    out[y:y1, x:x1] = np.asarray(patch)
