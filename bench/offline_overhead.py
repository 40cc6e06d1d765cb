"""Per-frame overhead of ``sam2-track`` over ``SAM2Tracker.track`` alone, on the same frames.

A synthetic video (one click per object on frame 0) is written as the input (an mp4, a
folder of JPEGs or an MCAP bag of rgb8 images); the same decoded frames are held in memory
for the tracker alone. Both run in this process with the same model, alternating, and each
is timed from its first frame to its last result written:

- tracker alone: ``SAM2Tracker.track`` (and the prompts on frame 0) over the frames in memory;
- the tool: ``run_tracking`` (decoding in the background, masks/*.png, tracks.csv,
  overlay.mp4, and for a bag --out-bag), per frame from the loop's start to the last
  file written (its start-up checks are reported apart).

Prints the medians per frame and their ratio (the target: overhead <= 5%), and the ratio
of the fastest runs (robust to other load on the host, which only ever adds time).

    python bench/offline_overhead.py                       # mp4, demo model, 60 frames 480x640
    python bench/offline_overhead.py --input bag --device cuda
    python bench/offline_overhead.py --model sam2.1_hiera_tiny --checkpoint sam2.1_hiera_tiny.pt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_model import SAM2Tracker, build_sam2  # noqa: E402
from sam2_model.data import SyntheticConfig, generate_video  # noqa: E402
from sam2_model.eval.synthetic import click_inside  # noqa: E402
from sam2_model.track import TrackConfig, run_tracking  # noqa: E402
from sam2_model.track.config import default_checkpoint  # noqa: E402
from sam2_model.tracker import TrackerOptions  # noqa: E402


def write_input(kind: str, frames: list[np.ndarray], root: Path) -> tuple[Path, list[np.ndarray]]:
    """The input file or folder, and its frames as the tool decodes them."""
    h, w = frames[0].shape[:2]
    if kind == "video":
        path = root / "clip.mp4"
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (w, h))
        for f in frames:
            out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        out.release()
        cap, decoded = cv2.VideoCapture(str(path)), []
        while (got := cap.read())[0]:
            decoded.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
        return path, decoded
    if kind == "folder":
        path = root / "frames"
        path.mkdir()
        for t, f in enumerate(frames):
            Image.fromarray(f).save(path / f"{t:05d}.jpg", quality=95)
        return path, [np.asarray(Image.open(p).convert("RGB")) for p in sorted(path.iterdir())]
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts, path = get_typestore(Stores.ROS2_HUMBLE), root / "bag"
    types = ts.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/camera/image", "sensor_msgs/msg/Image", typestore=ts)
        for t, f in enumerate(frames):
            ns = 1_700_000_000_000_000_000 + t * 66_666_667
            header = types["std_msgs/msg/Header"](
                types["builtin_interfaces/msg/Time"](ns // 10**9, ns % 10**9), "camera"
            )
            msg = types["sensor_msgs/msg/Image"](header, h, w, "rgb8", 0, w * 3, f.reshape(-1))
            writer.write(conn, ns, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    return path, frames


def tracker_alone(model: torch.nn.Module, options: TrackerOptions, frames: list[np.ndarray], clicks: dict) -> float:
    """Seconds per frame of SAM2Tracker.track (and the frame-0 prompts) on frames in memory."""
    tracker = SAM2Tracker(model, **{k: getattr(options, k) for k in options.__dataclass_fields__})
    start = time.perf_counter()
    for t, frame in enumerate(frames):
        tracker.track(frame)
        if t == 0:
            for obj_id, xy in clicks.items():
                tracker.add_prompt(obj_id, points=[xy], labels=[1])
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / len(frames)


def the_tool(config: TrackConfig, model: torch.nn.Module) -> tuple[float, float, float]:
    """Seconds per frame of the tool's loop, its start-up seconds (checks, opening), and the
    CPU seconds per frame of its decoding and writing threads."""
    start = time.perf_counter()
    summary = run_tracking(config, model=model)
    total = time.perf_counter() - start
    background = (summary.decode_cpu_seconds + summary.write_cpu_seconds) / summary.frames
    return summary.seconds / summary.frames, total - summary.seconds, background


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", choices=("video", "folder", "bag"), default="video")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--model", default="sam2_ros_demo")
    parser.add_argument("--checkpoint", default=None, help="default: the demo model's")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; medians are reported")
    args = parser.parse_args(argv)

    checkpoint = args.checkpoint or str(default_checkpoint())
    model = build_sam2(args.model, checkpoint, device=args.device, image_size=args.image_size)
    video = generate_video(1, SyntheticConfig(height=args.height, width=args.width, num_frames=args.frames))
    clicks = {i: list(click_inside(video.masks[0][i])) for i in video.object_ids}
    options = TrackerOptions(device=args.device, precision=args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source, frames = write_input(args.input, video.frames, root)
        (root / "p.yaml").write_text("".join(f"- {{frame: 0, id: {i}, points: [{xy}]}}\n" for i, xy in clicks.items()))
        config = TrackConfig(
            input=str(source),
            out=str(root / "out"),
            prompts=str(root / "p.yaml"),
            tracker=options,
            out_bag=str(root / "out_bag") if args.input == "bag" else None,
            overwrite=True,
            progress=False,
        )
        tracker_alone(model, options, frames[:8], clicks)  # warm-up (lazy initialisation, caches)
        alone, tool, startup, cpu = [], [], [], []
        for _ in range(args.repeats):
            alone.append(tracker_alone(model, options, frames, clicks))
            per_frame, start_s, background = the_tool(config, model)
            tool.append(per_frame)
            startup.append(start_s)
            cpu.append(background)
            if args.input == "bag":
                import shutil

                shutil.rmtree(root / "out_bag")
    a, b = statistics.median(alone), statistics.median(tool)
    print(
        f"{args.input} input, {len(frames)} frames {args.width}x{args.height}, {len(clicks)} objects, "
        f"model {args.model} on {model.device} ({args.precision}), {args.repeats} runs each"
    )
    print(f"SAM2Tracker.track alone: {a * 1e3:8.2f} ms/frame  (runs: {', '.join(f'{x * 1e3:.2f}' for x in alone)})")
    print(f"sam2-track (all outputs): {b * 1e3:8.2f} ms/frame  (runs: {', '.join(f'{x * 1e3:.2f}' for x in tool)})")
    print(f"ratio {b / a:.3f}  (overhead {100 * (b / a - 1):+.1f}%, target <= +5%)")
    fastest = min(tool) / min(alone)
    print(f"ratio of the fastest runs {fastest:.3f}  (overhead {100 * (fastest - 1):+.1f}%)")
    print(
        f"decoding and writing threads: {statistics.median(cpu) * 1e3:.2f} ms of CPU per frame "
        f"({100 * statistics.median(cpu) / a:.1f}% of the tracker's time: about what they add where no core "
        "is spare, as on a 2-core host tracking on the CPU; nothing where one is)"
    )
    print(f"start-up (checks, probing the input; not per frame): {statistics.median(startup):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
