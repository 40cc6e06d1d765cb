"""Helpers of the ``make demo`` run, shared by ``sam2_ros.demo`` (the command) and
``sam2_ros.demo_session`` (the client): installed files, child processes, waiting, and
recognising published frames by their pixels. No ROS message import."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["digest", "executable", "frame_digests", "share_file", "start_process", "wait_until"]


def share_file(relative: str) -> Path:
    """A file of the installed package (share/sam2_ros/...), or of the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory("sam2_ros")) / relative
        if path.exists():
            return path
    except (ImportError, LookupError):
        pass
    return Path(__file__).resolve().parents[1] / relative


def executable(name: str) -> str:
    """The path of one of the package's installed executables (lib/sam2_ros/NAME)."""
    from ament_index_python.packages import get_package_prefix

    return str(Path(get_package_prefix("sam2_ros")) / "lib" / "sam2_ros" / name)


def digest(pixels: bytes) -> str:
    """A digest of a frame's bytes."""
    return hashlib.sha1(pixels).hexdigest()


def frame_digests(frames: list[np.ndarray]) -> dict[str, int]:
    """Frame index of each frame's pixel digest (to recognise published frames)."""
    return {digest(np.ascontiguousarray(f).tobytes()): i for i, f in enumerate(frames)}


def start_process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child process with its output in ``log`` (``env``: variables to add or change)."""
    handle = open(log, "w")  # noqa: SIM115 (owned by the process for its lifetime)
    return subprocess.Popen(
        [sys.executable, *cmd],
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        time.sleep(0.05)
