"""Cost of the node's 3D step (``depth: true``) per frame, beside the tracker's own frame.

A synthetic 640x480 video with N objects (default 8) is tracked with the demo model, each
object prompted with its true box on frame 0; a depth map is made for each frame (every
object a plane at its own distance, the background behind, 3% of pixels without a reading,
1 mm noise). Then, on the same frames, in this process, one after the other:

- tracker alone: ``SAM2Tracker.track`` per frame (the reference);
- 3D: what the node's publishing thread adds with depth on: the depth image decoded from
  16UC1 bytes, every object's position and size (``frame_geometry``: erosion, back-projection,
  median, percentiles), the markers and the ``~/points`` cloud.

Prints the medians per frame, the 3D step against the issue's budget (5 ms for 8 objects on
a 640x480 frame) and against the tracker's frame.

    source scripts/env.sh                     # sam2_ros with its messages, from the install space
    python bench/depth_3d.py                  # 8 objects, 640x480, demo model, CPU
    python bench/depth_3d.py --objects 16 --frames 40
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sam2_model import SAM2Tracker, build_sam2
from sam2_model.data import SyntheticConfig, generate_video
from sam2_model.track.config import default_checkpoint

BUDGET_MS = 5.0


def depth_frames(video, rng: np.random.Generator) -> list[bytes]:
    """16UC1 depth images (millimetres) as a camera sends them."""
    out = []
    for t, frame in enumerate(video.frames):
        depth = np.full(frame.shape[:2], 4.0, np.float32)
        for obj_id, mask in video.masks[t].items():
            depth[mask] = 0.8 + 0.25 * obj_id
        depth += rng.normal(0.0, 0.001, depth.shape).astype(np.float32)
        depth[rng.random(depth.shape) < 0.03] = 0.0  # no reading
        out.append((depth * 1000).astype("<u2").tobytes())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5, help="times the 3D step runs per frame (medians)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    # ROS message modules: the 3D step builds the node's own messages
    from std_msgs.msg import Header

    from sam2_model.geometry import DepthSettings, Intrinsics, decode_depth, fit_depth, frame_geometry
    from sam2_ros.conversions import tracked_object
    from sam2_ros.outputs_3d import marker_array, point_cloud

    config = SyntheticConfig(
        height=args.height,
        width=args.width,
        num_frames=args.frames,
        min_objects=args.objects,
        max_objects=args.objects,
        num_distractors=0,
        occlusion_prob=0.0,
        exit_prob=0.0,
    )
    video = generate_video(11, config)
    depths = depth_frames(video, np.random.default_rng(0))
    model = build_sam2("sam2_ros_demo", default_checkpoint())
    tracker = SAM2Tracker(model)
    tracker.warmup()

    tracking_ms, results = [], []
    for t, frame in enumerate(video.frames):
        start = time.perf_counter()
        result = tracker.track(frame)
        if t == 0:
            for obj_id in video.object_ids:
                ys, xs = np.nonzero(video.masks[0][obj_id])
                if len(xs):
                    tracker.add_prompt(obj_id, box=[xs.min(), ys.min(), xs.max(), ys.max()])
            result = tracker.frame_result(0)
        tracking_ms.append((time.perf_counter() - start) * 1e3)
        results.append(result)

    h, w = args.height, args.width
    k = Intrinsics(fx=600.0, fy=600.0, cx=w / 2, cy=h / 2)
    settings, header = DepthSettings(), Header(frame_id="camera")
    parts = {"decode": [], "geometry": [], "markers": [], "cloud": []}  # ms per frame, medians of the repeats
    points, positioned = [], []
    for t, result in enumerate(results[1:], start=1):
        runs = {name: [] for name in parts}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            depth = fit_depth(decode_depth("16UC1", h, w, 2 * w, depths[t], False), (h, w))
            t1 = time.perf_counter()
            geometry = frame_geometry(result.objects, depth, k, settings)
            t2 = time.perf_counter()
            objects = [tracked_object(r, "", header, geometry.get(i)) for i, r in result.objects.items()]  # not 3D
            t3 = time.perf_counter()
            marker_array(header, objects, set())
            t4 = time.perf_counter()
            point_cloud(header, geometry)
            t5 = time.perf_counter()
            for name, seconds in zip(parts, (t1 - t0, t2 - t1, t4 - t3, t5 - t4), strict=True):
                runs[name].append(seconds * 1e3)
        for name in parts:
            parts[name].append(statistics.median(runs[name]))
        points.append(sum(len(g.points) for g in geometry.values()))
        positioned.append(sum(g.has_position for g in geometry.values()))

    track = statistics.median(tracking_ms[1:])
    ms = {name: statistics.median(values) for name, values in parts.items()}
    every = ms["decode"] + ms["geometry"] + ms["markers"]  # each frame with depth on
    n = len(video.object_ids)
    print(f"{w}x{h}, {n} objects, demo model on {model.device}, {args.frames} frames")
    print(f"  objects with a position: median {statistics.median(positioned):.0f} per frame")
    print(f"  points back-projected: median {statistics.median(points):.0f} per frame")
    print(f"  tracker alone: {track:8.2f} ms per frame (median)")
    print("  3D, per frame (medians):")
    print(f"    depth decoded (16UC1 -> metres): {ms['decode']:.2f} ms")
    print(f"    positions and sizes:             {ms['geometry']:.2f} ms")
    print(f"    markers:                         {ms['markers']:.2f} ms")
    print(f"    = every frame with depth on:     {every:.2f} ms")
    print(f"      {every / BUDGET_MS:.2f}x the {BUDGET_MS:.0f} ms budget, {every / track:.3f}x the tracker's frame")
    print(f"    + ~/points cloud, while subscribed: {ms['cloud']:.2f} ms")


if __name__ == "__main__":
    main()
