"""``sam2-track`` (also ``python -m sam2_model.track``): the streaming tracker over a video
file, an image folder or a ROS 2 bag, to DAVIS masks, tracks and an overlay video.

    sam2-track clip.mp4 --prompts prompts.yaml --out out/
    sam2-track DAVIS/JPEGImages/480p/bike-packing --masks-dir DAVIS/Annotations/480p/bike-packing \\
        --eval DAVIS/Annotations/480p/bike-packing --model sam2.1_hiera_tiny \\
        --checkpoint sam2.1_hiera_tiny.pt --out out/bike-packing
    sam2-track recording/ --topic /camera/image_raw --prompts prompts.yaml --out out/ --out-bag out/bag

Writes to --out: masks/<frame>.png (palette PNG, pixel = object id), tracks.csv,
overlay.mp4 (unless --no-video) and with --eval, eval.csv. See docs/offline.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from ..cli_args import parse_bool
from ..tracker import TrackerOptions
from .config import DEMO_MODEL, TrackConfig, TrackError
from .pipeline import TrackSummary, run_tracking

__all__ = ["build_parser", "config_from_args", "main"]

# TrackerOptions that are not flags of their own (--device and --precision are; a dtype is not a flag)
_NOT_FLAGS = ("device", "precision", "memory_dtype")


def _tracker_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracker options (see sam2_model.TrackerOptions)")
    defaults = TrackerOptions()
    for f in fields(TrackerOptions):
        if f.name in _NOT_FLAGS:
            continue
        value, flag, dest = getattr(defaults, f.name), "--" + f.name.replace("_", "-"), f"tracker.{f.name}"
        if isinstance(value, bool):
            group.add_argument(flag, dest=dest, type=parse_bool, default=value, metavar="BOOL")
        elif isinstance(value, tuple):
            group.add_argument(flag, dest=dest, nargs="*", default=value, metavar="NAME")
        else:
            group.add_argument(flag, dest=dest, type=type(value), default=value, metavar=type(value).__name__.upper())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sam2-track", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", help="video file, image folder, or ROS 2 bag (folder, .mcap or .db3)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--topic", help="the bag's image topic (sensor_msgs/Image or CompressedImage)")
    p.add_argument(
        "--depth-topic", help="bag: depth aligned to --topic (16UC1 mm or 32FC1 m): 3D positions in tracks.csv"
    )
    p.add_argument("--camera-info-topic", help="bag: the colour camera's sensor_msgs/CameraInfo (with --depth-topic)")
    p.add_argument(
        "--sync-slop", type=float, default=0.05, help="seconds between an image and its depth/camera_info stamps"
    )
    g = p.add_argument_group("prompts")
    g.add_argument("--prompts", help="YAML or JSON prompts file (see docs/offline.md)")
    g.add_argument("--first-masks", help="DAVIS palette PNG of the first processed frame (pixel = object id)")
    g.add_argument("--masks-dir", help="DAVIS annotations folder: each object prompted where it first appears")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEMO_MODEL, help=f"model configuration (default: {DEMO_MODEL}, the demo model)")
    g.add_argument("--checkpoint", help="checkpoint file (default: the demo model's)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    g.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    g.add_argument("--image-size", type=int, help="model input size (multiple of 32; default: the model's)")
    g = p.add_argument_group("frames")
    g.add_argument("--start", type=int, default=0, help="first input frame processed")
    g.add_argument("--stride", type=int, default=1, help="process every N-th frame")
    g.add_argument("--max-frames", type=int, help="process at most N frames")
    g = p.add_argument_group("outputs")
    g.add_argument("--no-video", dest="video", action="store_false", help="do not write overlay.mp4")
    g.add_argument("--fps", type=float, help="overlay.mp4 frame rate (default: the input's, else 15)")
    g.add_argument("--out-bag", help="bag input: write a bag with the image topic, /NODE/objects and /NODE/mask")
    g.add_argument("--out-bag-storage", choices=("mcap", "sqlite3"), help="default: the input bag's")
    g.add_argument("--node-name", default="sam2_tracker", help="namespace of the output bag's topics")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier run's results in --out")
    g.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval", dest="eval_dir", metavar="GT_DIR", help="ground-truth PNGs named after the frames")
    g.add_argument(
        "--eval-skip-last",
        action="store_true",
        help="leave out the last frame too (davis2017-evaluation, vos-benchmark)",
    )
    _tracker_flags(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrackConfig:
    """The :class:`TrackConfig` the parsed flags describe; a bad value raises ``ValueError`` naming it."""
    values = vars(args)
    opts = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("tracker.")}
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()}
    tracker = TrackerOptions(device=args.device, precision=args.precision, **opts)
    top = {k: v for k, v in values.items() if "." not in k and k not in ("device", "precision")}
    return TrackConfig(tracker=tracker, **top)


def print_summary(s: TrackSummary) -> None:
    """The end of a run, on stdout."""
    share = s.tracker_seconds / s.seconds if s.seconds > 0 else 0.0
    print(
        f"sam2-track: {s.frames} frames of {s.source.path} in {s.seconds:.1f} s "
        f"({s.fps:.2f} frames/s; the tracker {share:.0%} of the time)"
    )
    for obj_id, o in sorted(s.objects.items()):
        name = f"object {obj_id}" + (f" ({o.label})" if o.label else "")
        print(f"  {name}: from frame {o.first_frame}, visible on {o.visible} of {o.frames} frames")
    print(f"  wrote {s.out}/masks/*.png, tracks.csv" + (", overlay.mp4" if (s.out / "overlay.mp4").exists() else ""))
    if s.out_bag is not None:
        print(f"  wrote the bag {s.out_bag}")
    if s.eval is not None:
        e = s.eval
        print(f"eval: J&F {e.jf:.4f}  J {e.j:.4f}  F {e.f:.4f}  ({len(e.objects)} objects, {e.frames} frames)")
        for obj_id, score in e.objects.items():
            print(f"  object {obj_id}: J&F {score.jf:.4f}  J {score.j:.4f}  F {score.f:.4f}  ({score.frames} frames)")
        print(f"  wrote {s.out}/eval.csv")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        summary = run_tracking(config)
    except (TrackError, ValueError) as err:  # named problems: no traceback
        print(f"sam2-track: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sam2-track: interrupted; {args.out} holds the frames written so far", file=sys.stderr)
        return 130
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
