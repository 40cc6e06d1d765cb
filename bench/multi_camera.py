"""Several cameras, one model, in ``sam2_model`` (no ROS): process memory and time per round
of N tracker sessions on one model (``new_session`` + ``track_many``, one batched image
encoding per round) against N separate trackers, each with its own copy of the model.

Each variant runs in a fresh subprocess, one after the other (never two PyTorch processes at
once on this 2-core machine), over the same synthetic frames (one per camera per round, two
objects per camera); memory is the process's peak resident set (``ru_maxrss``).

    python bench/multi_camera.py                       # demo model, 1, 2 and 4 cameras, CPU
    python bench/multi_camera.py --model sam2.1_hiera_tiny --checkpoint sam2.1_hiera_tiny.pt --cameras 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def run(variant: str, cameras: int, model_name: str, checkpoint: str, rounds: int, size: int) -> dict:
    """One variant in this process: ``shared`` (sessions, track_many) or ``separate``."""
    import numpy as np
    import torch

    from sam2_model import SAM2Tracker, build_sam2, track_many
    from sam2_model.data import SyntheticConfig, generate_video

    torch.set_num_threads(2)
    kw = {"image_size": size} if size else {}
    config = SyntheticConfig(num_frames=rounds, min_objects=2, max_objects=2, num_distractors=0)
    videos = [generate_video(10 + c, config) for c in range(cameras)]
    if variant == "shared":
        first = SAM2Tracker(build_sam2(model_name, checkpoint or None, **kw))
        trackers = [first] + [first.new_session() for _ in range(cameras - 1)]
    else:
        trackers = [SAM2Tracker(build_sam2(model_name, checkpoint or None, **kw)) for _ in range(cameras)]
    times = []
    for t in range(rounds):
        frames = [v.frames[t] for v in videos]
        start = time.perf_counter()
        if variant == "shared":
            track_many(trackers, frames)
        else:
            for tr, f in zip(trackers, frames, strict=True):
                tr.track(f)
        times.append(time.perf_counter() - start)
        if t == 0:
            for tr, v in zip(trackers, videos, strict=True):
                for obj_id in v.object_ids:
                    ys, xs = np.nonzero(v.masks[0][obj_id])
                    if len(xs):
                        tr.add_prompt(obj_id, box=[xs.min(), ys.min(), xs.max(), ys.max()])
    return {
        "variant": variant,
        "cameras": cameras,
        "round_ms": 1e3 * statistics.median(times[2:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters_mb": sum(p.numel() * p.element_size() for p in trackers[0].model.parameters()) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2_ros_demo")
    parser.add_argument("--checkpoint", default="", help="default: the demo model's committed weights")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "CAMERAS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkpoint = args.checkpoint
    if not checkpoint and args.model == "sam2_ros_demo":
        from sam2_model.track.config import default_checkpoint

        checkpoint = str(default_checkpoint())
    if args.one:
        variant, cameras = args.one[0], int(args.one[1])
        print(json.dumps(run(variant, cameras, args.model, checkpoint, args.rounds, args.image_size)))
        return
    rows = []
    for cameras in args.cameras:
        for variant in ("separate", "shared"):
            cmd = [sys.executable, __file__, "--model", args.model, "--checkpoint", checkpoint]
            cmd += ["--rounds", str(args.rounds), "--image-size", str(args.image_size), "--one", variant, str(cameras)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.model}, {args.rounds} rounds, 2 objects per camera; weights {rows[0]['parameters_mb']:.1f} MB")
    print("cameras | separate: peak RSS, ms/round | shared: peak RSS, ms/round | RSS ratio | time ratio")
    for cameras in args.cameras:
        sep = next(r for r in rows if r["cameras"] == cameras and r["variant"] == "separate")
        sh = next(r for r in rows if r["cameras"] == cameras and r["variant"] == "shared")
        print(
            f"{cameras:7d} | {sep['peak_rss_mb']:8.0f} MB {sep['round_ms']:8.1f} | "
            f"{sh['peak_rss_mb']:8.0f} MB {sh['round_ms']:8.1f} | "
            f"{sh['peak_rss_mb'] / sep['peak_rss_mb']:.2f} | {sh['round_ms'] / sep['round_ms']:.2f}"
        )


if __name__ == "__main__":
    main()
