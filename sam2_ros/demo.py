"""``make demo``: the tracker node with the demo model on a held-out synthetic video.

Starts ``tracker_node`` (the committed demo model) and ``video_publisher`` (a held-out
synthetic video at 15 Hz), prompts one click per object on the first frame through
``~/add_prompt``, records ``~/overlay`` and ``~/objects``, and writes
``demo_out/overlay.mp4``, ``demo_out/contact_sheet.png`` and ``demo_out/results.csv``;
prints J&F per object against the ground truth and the node's measured rate.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .demo_support import share_file

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(share_file("models/sam2_ros_demo.pt")))
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


if __name__ == "__main__":
    sys.exit(main())
