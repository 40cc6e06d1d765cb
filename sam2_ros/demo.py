"""``make demo``: the tracker node with the demo model on a held-out synthetic video.

Starts ``tracker_node`` (the committed demo model) and ``video_publisher`` (a held-out
synthetic video at 15 Hz), prompts one click per object on the first frame through
``~/add_prompt``, records ``~/overlay`` and ``~/objects``, and writes
``demo_out/overlay.mp4``, ``demo_out/contact_sheet.png`` and ``demo_out/results.csv``;
prints J&F per object against the ground truth and the node's measured rate.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _share_file(relative: str) -> Path:
    """A file of the installed package (share/sam2_ros/...), or of the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory("sam2_ros")) / relative
        if path.exists():
            return path
    except (ImportError, LookupError):
        pass
    return Path(__file__).resolve().parents[1] / relative


def _executable(name: str) -> str:
    from ament_index_python.packages import get_package_prefix

    return str(Path(get_package_prefix("sam2_ros")) / "lib" / "sam2_ros" / name)


def _digest(pixels: bytes) -> str:
    return hashlib.sha1(pixels).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(_share_file("models/sam2_ros_demo.pt")))
    parser.add_argument("--model", default="sam2_ros_demo")
    parser.add_argument("--video", type=int, default=0, help="index of the held-out synthetic video")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="demo_out")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from .demo_session import DemoSession

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    session = DemoSession(args, out)
    try:
        return session.run()
    finally:
        session.close()


def start_process(cmd: list[str], log: Path) -> subprocess.Popen:
    """A child process with its output in ``log``."""
    handle = open(log, "w")  # noqa: SIM115 (owned by the process for its lifetime)
    return subprocess.Popen([sys.executable, *cmd], stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        time.sleep(0.05)


def frame_digests(frames: list[np.ndarray]) -> dict[str, int]:
    """Frame index of each frame's pixel digest (to recognise published frames)."""
    return {_digest(np.ascontiguousarray(f).tobytes()): i for i, f in enumerate(frames)}


if __name__ == "__main__":
    sys.exit(main())
