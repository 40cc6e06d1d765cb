"""The colours of tracked objects in overlays: the node's ``~/overlay`` and ``sam2-track``'s
video draw each object id in the same colour."""

from __future__ import annotations

import numpy as np

__all__ = ["ALPHA", "PALETTE", "object_colour"]

# well-separated colours (RGB); id k gets PALETTE[k % len], as on the node's ~/overlay
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
