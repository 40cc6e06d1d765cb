"""Topic names of the node's cameras (no ROS import). With the ``cameras`` parameter empty
the node has one unnamed camera and today's names (``image``, ``~/objects``); camera
``front`` has ``front/image`` and ``~/front/objects``."""

from __future__ import annotations

import re

__all__ = ["camera_topic", "check_camera_names", "on_camera", "private_topic"]

# one ROS name token: letters, digits and underscores, not starting with a digit
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def camera_topic(camera: str, name: str) -> str:
    """A camera's input topic, resolved in the node's namespace: ``image`` or ``front/image``
    (an absolute name stays as it is)."""
    return f"{camera}/{name}" if camera and not name.startswith("/") else name


def private_topic(camera: str, name: str) -> str:
    """A camera's output topic or service under the node's name: ``~/objects`` or
    ``~/front/objects``."""
    return f"~/{camera}/{name}" if camera else f"~/{name}"


def on_camera(camera: str) -> str:
    """`` on camera front`` for log lines; empty for the node's one unnamed camera."""
    return f" on camera {camera}" if camera else ""


def check_camera_names(names: tuple[str, ...]) -> None:
    """``ValueError`` naming the ``cameras`` parameter when a name is not one ROS name token
    (it becomes a namespace of topics) or appears twice."""
    seen: set[str] = set()
    for name in names:
        if not _TOKEN.fullmatch(name):
            raise ValueError(
                f"parameter cameras: {name!r} is not a valid camera name: one ROS name token (letters, digits "
                "and underscores, not starting with a digit), e.g. front or wrist_left"
            )
        if name in seen:
            raise ValueError(f"parameter cameras: {name!r} appears twice; each camera needs its own name")
        seen.add(name)
