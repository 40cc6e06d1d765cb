"""The overlay image people watch in RViz: masks tinted per object, boxes, ids and labels,
and a mark on occluded objects (no ROS import)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sam2_model import ObjectResult

__all__ = ["object_colour", "render_overlay"]

# A fixed palette of well-separated colours; id k gets PALETTE[k % len].
PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
    ],
    dtype=np.uint8,
)
ALPHA = 0.5  # mask opacity


def object_colour(obj_id: int) -> tuple[int, int, int]:
    """The RGB colour of an object id."""
    r, g, b = PALETTE[obj_id % len(PALETTE)]
    return int(r), int(g), int(b)


def render_overlay(image: np.ndarray, objects: dict[int, ObjectResult], labels: dict[int, str]) -> np.ndarray:
    """``image [H, W, 3]`` RGB + results -> a new ``[H, W, 3]`` RGB uint8 overlay.

    Visible objects: tinted mask, box and ``id label``; occluded ones (their mask is empty):
    the text ``id label: occluded`` in the top-left corner, in the object's colour.
    """
    out = image.astype(np.float32)
    for obj_id in sorted(objects):
        o = objects[obj_id]
        if o.area:
            colour = np.array(object_colour(obj_id), dtype=np.float32)
            out[o.mask] = (1 - ALPHA) * out[o.mask] + ALPHA * colour
    canvas = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    occluded_row = 2
    for obj_id in sorted(objects):
        o = objects[obj_id]
        colour = object_colour(obj_id)
        name = f"{obj_id} {labels.get(obj_id, '')}".strip()
        if o.occluded or o.bbox is None:
            draw.text((4, occluded_row), f"{name}: occluded", fill=colour, font=font)
            occluded_row += 12
            continue
        draw.rectangle(o.bbox, outline=colour, width=2)
        x0, y0 = o.bbox[0], max(o.bbox[1] - 12, 0)
        draw.text((x0 + 2, y0), name, fill=colour, font=font)
    return np.asarray(canvas)
