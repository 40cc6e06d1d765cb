"""Per-frame tracking latency: our SAM2Tracker vs the official SAM2VideoPredictor.

Both run in this process on the same frames (a synthetic 640x480 video written as JPEG),
the same weights (the official model's random weights, saved in the official format and
loaded into ours) and the same prompts (one click per object on frame 0). The official
predictor is used the way it runs fastest (all frames preloaded, one propagate_in_video);
its frames and ours alternate, so load on the host hits both alike. Latency is the median
per-frame time once the memory bank is full (frames >= --warmup).

    python bench/tracker_latency.py --image-size 512 --objects 1 4 8
    python bench/tracker_latency.py --precision bf16     # both sides under bf16 autocast

With ``--precision bf16`` our tracker runs with ``precision="bf16"`` and every call into the
official predictor runs inside ``torch.autocast("cpu", torch.bfloat16)``: the same precision on
both sides (on CPUs with AMX or AVX512-BF16, oneDNN runs the bf16 matrix products natively).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))

from conftest import OFFICIAL_CONFIG_FILES, build_official  # noqa: E402

from sam2_model import SAM2Tracker, build_sam2  # noqa: E402


def make_video(num_frames: int, h: int, w: int, num_objects: int, seed: int = 0):
    """Frames with ``num_objects`` moving discs, and one click inside each disc on frame 0."""
    rng = np.random.default_rng(seed)
    background = (rng.random((h, w, 3)) * 60 + 80).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    centres = [(60 + (k % 4) * 140, 80 + (k // 4) * 200) for k in range(num_objects)]
    frames = []
    for t in range(num_frames):
        img = background.copy()
        for k, (cx, cy) in enumerate(centres):
            disc = (yy - cy - 2 * t) ** 2 + (xx - cx - 3 * t) ** 2 < 40**2
            img[disc] = ((70 * k) % 255, 200 - 20 * k, 90 + 15 * k)
        frames.append(img)
    clicks = [[float(cx), float(cy)] for cx, cy in centres]
    return frames, clicks


def run_interleaved(
    ref, ours, frame_dir: Path, frames, clicks, warmup: int, precision: str
) -> tuple[list[float], list[float]]:
    """Frame t of the official, then frame t of ours: host noise hits both alike."""
    tracker = SAM2Tracker(ours, fill_hole_area=0, precision=precision)
    official_times, our_times = [], []
    amp = precision == "bf16"
    with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        warnings.simplefilter("ignore")
        state = ref.init_state(video_path=str(frame_dir))
        for k, click in enumerate(clicks):
            ref.add_new_points_or_box(
                state, 0, k + 1, points=np.array([click], np.float32), labels=np.array([1], np.int32)
            )
        official = ref.propagate_in_video(state)
        for t, img in enumerate(frames):
            start = time.perf_counter()
            next(official)
            official_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            tracker.track(img)
            our_times.append(time.perf_counter() - start)
            if t == 0:
                for k, click in enumerate(clicks):
                    tracker.add_prompt(k + 1, points=[click], labels=[1])
    return official_times[warmup:], our_times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_tiny", choices=sorted(OFFICIAL_CONFIG_FILES))
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=16, help="frames before the memory bank is full")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ref = build_official(args.model, args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "weights.pt"
        torch.save({"model": ref.state_dict()}, ckpt)
        ours = build_sam2(args.model, ckpt, image_size=args.image_size)
        with torch.no_grad():  # random weights: keep the objects visible so every path runs
            for m in (ref, ours):
                m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(10.0)
        rows = []
        for n in args.objects:
            frames, clicks = make_video(args.frames, 480, 640, n)
            frame_dir = Path(tmp) / f"video_{n}"
            frame_dir.mkdir()
            for t, img in enumerate(frames):
                Image.fromarray(img).save(frame_dir / f"{t:05d}.jpg", quality=95)
            decoded = [np.asarray(Image.open(frame_dir / f"{t:05d}.jpg").convert("RGB")) for t in range(args.frames)]
            with torch.inference_mode():
                official, mine = run_interleaved(ref, ours, frame_dir, decoded, clicks, args.warmup, args.precision)
            rows.append((n, statistics.median(official), statistics.median(mine)))
            print(f"{n} objects: official {rows[-1][1] * 1e3:.0f} ms, ours {rows[-1][2] * 1e3:.0f} ms", flush=True)

    print(
        f"\n{args.model} at {args.image_size}x{args.image_size}, {args.threads} threads, {args.precision}, CPU, "
        f"median over frames {args.warmup}..{args.frames - 1}"
    )
    print("| objects | official ms/frame | ours ms/frame | speed-up |")
    print("|---|---|---|---|")
    for n, off, mine in rows:
        print(f"| {n} | {off * 1e3:.0f} | {mine * 1e3:.0f} | {off / mine:.2f}x |")


if __name__ == "__main__":
    main()
