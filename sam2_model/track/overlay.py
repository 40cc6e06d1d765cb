"""The overlay video's frames: masks tinted per object, boxes, ids and labels, and the
occluded objects listed in the top-left corner; the colours of the live node's overlay."""

from __future__ import annotations

import numpy as np

from ..colours import ALPHA, PALETTE, object_colour
from ..tracker import ObjectResult

__all__ = ["render_overlay"]

_LUT = PALETTE[np.arange(256) % len(PALETTE)].reshape(256, 1, 3)  # object id -> colour, for cv2.LUT


def render_overlay(
    image: np.ndarray, label_image: np.ndarray, objects: dict[int, ObjectResult], labels: dict[int, str]
) -> np.ndarray:
    """``image [H, W, 3]`` RGB + the frame's label image and results -> ``[H, W, 3]`` RGB uint8."""
    import cv2

    tint = cv2.LUT(cv2.merge([label_image] * 3), _LUT)  # each pixel its object's colour
    blended = cv2.addWeighted(image, 1 - ALPHA, tint, ALPHA, 0.0)
    out = image.copy()
    cv2.copyTo(blended, (label_image > 0).view(np.uint8), out)  # tinted where an object is
    font, scale, row = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 12
    for obj_id in sorted(objects):
        o = objects[obj_id]
        colour = object_colour(obj_id)
        name = f"{obj_id} {labels.get(obj_id, '')}".strip()
        if o.occluded or o.bbox is None:
            cv2.putText(out, f"{name}: occluded", (4, row), font, scale, colour, 1, cv2.LINE_AA)
            row += 14
            continue
        x0, y0, x1, y1 = o.bbox
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        cv2.putText(out, name, (x0 + 2, max(y0 - 4, 10)), font, scale, colour, 1, cv2.LINE_AA)
    return out
