"""Tracking speed on a GPU: our SAM2Tracker (eager and compiled) vs the official
SAM2VideoPredictor, on the same machine, frames, weights and prompts.

A synthetic 640x480 video with up to 16 moving discs; object k is clicked once on frame 0.
Both sides run under bf16 autocast (the official benchmarks' setting) with the official
model's random weights (every tensor perturbed, objects kept visible), loaded into ours
from the official file format. Each run tracks ``--warmup`` frames (the memory bank
fills), then times ``--frames`` frames one by one, each ending with the masks on the host
(ours: ``track()``; the official: ``propagate_in_video`` plus a copy of its masks).
Reported: frames per second, p50/p99 latency, peak GPU memory, and ours/official ratios.

    python bench/gpu_fps.py --models sam2.1_hiera_tiny sam2.1_hiera_large \\
        --objects 1 4 8 16 --modes official eager graphs compiled --frames 300 --out fps.jsonl
    python bench/gpu_fps.py --soak 10000 --modes graphs --objects 4   # memory over a long stream

Modes of ours: ``eager``, ``compiled`` (``torch.compile``), ``graphs`` (CUDA graphs),
``compiled_graphs`` (both).
Runs go in the order given; ``--deadline`` stops starting new ones after that many seconds
(results so far are kept in ``--out``, one JSON line per run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
sys.path.insert(0, str(ROOT))

from conftest import OFFICIAL_CONFIG_FILES, build_official  # noqa: E402

from sam2_model import SAM2Tracker, build_sam2  # noqa: E402
from sam2_model.tracker.compiled import bucket_size  # noqa: E402
from sam2_model.tracker.options import SDPA_BACKENDS  # noqa: E402

H, W = 480, 640


def make_video(num_frames: int, max_objects: int = 16, seed: int = 0) -> tuple[list[np.ndarray], list[list[float]]]:
    """Frames with up to 16 moving discs (4x4 grid) and one click inside each on frame 0."""
    rng = np.random.default_rng(seed)
    background = (rng.random((H, W, 3)) * 60 + 80).astype(np.uint8)
    yy, xx = np.mgrid[:H, :W]
    centres = [(80 + (k % 4) * 160, 60 + (k // 4) * 120) for k in range(max_objects)]
    frames = []
    for t in range(num_frames):
        img = background.copy()
        dx, dy = 20 * np.sin(t / 15), 15 * np.cos(t / 20)  # back and forth, stays in frame
        for k, (cx, cy) in enumerate(centres):
            disc = (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 < 30**2
            img[disc] = ((70 * k) % 255, 200 - 10 * k, 90 + 10 * k)
        frames.append(img)
    return frames, [[float(cx + 20 * np.sin(0)), float(cy + 15)] for cx, cy in centres]


def _cuda(fn_name: str, *args: object) -> float:
    """A ``torch.cuda`` memory/sync call, or 0 without CUDA (dry runs on the CPU)."""
    return getattr(torch.cuda, fn_name)(*args) if torch.cuda.is_available() else 0.0


def sdpa_context(names: list[str]):
    """The official's attention kernels restricted like ours (``--sdpa``), or no change."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not names:
        return contextlib.nullcontext()
    kinds = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
    return sdpa_kernel([getattr(SDPBackend, kinds[n]) for n in names], set_priority=True)


def summarize(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1e3 for t in times)
    return {
        "fps": len(ms) / (sum(ms) / 1e3),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
    }


def run_ours(tracker: SAM2Tracker, frames, clicks, n: int, warmup: int, timed: int) -> dict:
    tracker.reset()
    calls = tracker._compiled.calls if tracker._compiled is not None else 0
    replays = tracker._graphs.replays if tracker._graphs is not None else 0
    tracker.track(frames[0])
    for k in range(n):
        tracker.add_prompt(k + 1, points=[clicks[k]], labels=[1])
    for t in range(1, warmup):
        tracker.track(frames[t % len(frames)])
    _cuda("synchronize")
    _cuda("reset_peak_memory_stats")
    times = []
    for t in range(warmup, warmup + timed):
        start = time.perf_counter()
        result = tracker.track(frames[t % len(frames)])
        times.append(time.perf_counter() - start)
    visible = sum(not r.occluded for r in result.objects.values())
    extra = {"warmup_s": tracker.warmup_seconds, "visible_last_frame": visible}
    if tracker._compiled is not None:
        extra.update(compiled_calls=tracker._compiled.calls - calls, fallbacks=tracker._compiled.fallbacks)
    if tracker._graphs is not None:
        extra.update(graph_replays=tracker._graphs.replays - replays, graphs_captured=tracker._graphs.captures)
    return {**summarize(times), "peak_gib": _cuda("max_memory_allocated") / 2**30, **extra}


def run_official(predictor, state, clicks, n: int, warmup: int, timed: int) -> dict:
    predictor.reset_state(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(n):
            predictor.add_new_points_or_box(
                state, 0, k + 1, points=np.array([clicks[k]], np.float32), labels=np.array([1], np.int32)
            )
        frames = predictor.propagate_in_video(state)
        for _ in range(warmup):
            next(frames)
        _cuda("synchronize")
        _cuda("reset_peak_memory_stats")
        times = []
        for _ in range(timed):
            start = time.perf_counter()
            _, _, masks = next(frames)
            (masks > 0).cpu()
            times.append(time.perf_counter() - start)
        frames.close()
    return {**summarize(times), "peak_gib": _cuda("max_memory_allocated") / 2**30}


# mode -> tracker options (all bf16)
MODES = {
    "eager": {},
    "compiled": {"compile": True},
    "graphs": {"cuda_graphs": True},
    "compiled_graphs": {"compile": True, "cuda_graphs": True},
}


def soak(model, frames, clicks, n: int, total: int, mode: str) -> dict:
    """GPU memory over a long stream: allocated and peak bytes sampled 20 times."""
    every = max(total // 20, 1)
    tracker = SAM2Tracker(model, precision="bf16", max_objects=max(n, 1), **MODES[mode])
    tracker.warmup(buckets=(bucket_size(n),))
    tracker.track(frames[0])
    for k in range(n):
        tracker.add_prompt(k + 1, points=[clicks[k]], labels=[1])
    samples = []
    start = time.perf_counter()
    for t in range(1, total):
        tracker.track(frames[t % len(frames)])
        if t % every == 0:
            samples.append((t, _cuda("memory_allocated") / 2**20, _cuda("max_memory_allocated") / 2**20))
    first, last = samples[1], samples[-1]  # from frame 2*every: memory bank full
    return {
        "frames": total,
        "soak_mode": mode,
        "seconds": time.perf_counter() - start,
        "allocated_mib": [s[1] for s in samples],
        "growth_mib": last[1] - first[1],
        "peak_growth_mib": last[2] - first[2],
        "tracker_bytes": tracker.stats().total_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sam2.1_hiera_tiny"], choices=sorted(OFFICIAL_CONFIG_FILES))
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--modes", nargs="+", default=["official", "eager", "graphs"], choices=["official", *MODES])
    parser.add_argument("--frames", type=int, default=300, help="timed frames per run")
    parser.add_argument("--warmup", type=int, default=20, help="frames tracked before timing")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--soak", type=int, default=0, help="instead: memory over this many frames")
    parser.add_argument(
        "--sdpa", nargs="*", default=[], choices=list(SDPA_BACKENDS), help="attention kernels (both sides)"
    )
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds; no new run after it")
    parser.add_argument("--out", default="gpu_fps.jsonl")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script (small sizes)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_fps: no CUDA GPU here (--device cpu for a dry run)")
    dev = torch.device(args.device)
    began = time.monotonic()
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU (dry run)"
    frames, clicks = make_video(args.warmup + args.frames + 1)
    out = open(args.out, "a")  # noqa: SIM115
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            ref = build_official(name, args.image_size)
            with torch.no_grad():  # random weights: keep the objects visible
                ref.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(10.0)
            ckpt = Path(tmp) / f"{name}.pt"
            torch.save({"model": ref.state_dict()}, ckpt)
            ours = build_sam2(name, ckpt, device=dev, image_size=args.image_size)
            if args.soak:
                row = {"model": name, "mode": "soak", "objects": args.objects[0], "device": device}
                mode = next((m for m in args.modes if m != "official"), "eager")
                row.update(soak(ours, frames, clicks, args.objects[0], args.soak, mode))
                print(json.dumps(row), file=out, flush=True)
                print(row, flush=True)
                continue
            ref = ref.to(dev)
            state = None
            for mode in args.modes:
                tracker = None
                if mode != "official" and state is not None:  # its preloaded frames would count as ours
                    state = None
                    _cuda("empty_cache")
                if mode != "official" and time.monotonic() - began < args.deadline:
                    try:
                        tracker = SAM2Tracker(
                            ours,
                            precision="bf16",
                            max_objects=max(args.objects),
                            sdpa_backends=tuple(args.sdpa),
                            **MODES[mode],
                        )
                        buckets = tuple(sorted({bucket_size(n) for n in args.objects}))
                        print(f"{name} {mode}: warm-up {tracker.warmup(buckets):.1f} s", flush=True)
                    except Exception as exc:
                        print(f"{name} {mode}: warm-up FAILED {type(exc).__name__}: {exc}", flush=True)
                        continue
                for n in args.objects:
                    if time.monotonic() - began > args.deadline:
                        print(f"deadline: skipping {name} {mode} {n}", flush=True)
                        continue
                    start = time.monotonic()
                    try:
                        if mode == "official":
                            if state is None:
                                state = official_state(ref, frames, Path(tmp))
                            with (
                                torch.inference_mode(),
                                torch.autocast(dev.type, dtype=torch.bfloat16),
                                sdpa_context(args.sdpa),
                            ):
                                res = run_official(ref, state, clicks, n, args.warmup, args.frames)
                        else:
                            res = run_ours(tracker, frames, clicks, n, args.warmup, args.frames)
                    except Exception as exc:  # keep going: the other runs still count
                        print(f"{name} {mode} {n}: FAILED {type(exc).__name__}: {exc}", flush=True)
                        continue
                    row = {"model": name, "mode": mode, "objects": n, "image_size": args.image_size, "sdpa": args.sdpa}
                    row.update(res, device=device, run_s=time.monotonic() - start)
                    rows.append(row)
                    print(json.dumps(row), file=out, flush=True)
                    print(
                        f"{name} {mode:8s} {n:2d} obj: {res['fps']:7.1f} FPS  p50 {res['p50_ms']:6.2f} ms  "
                        f"p99 {res['p99_ms']:6.2f} ms  peak {res['peak_gib']:.2f} GiB  ({row['run_s']:.0f} s)",
                        flush=True,
                    )
            del ref, ours, state, tracker
            _cuda("empty_cache")
    if rows:
        print_table(rows, device)


def official_state(predictor, frames: list[np.ndarray], tmp: Path):
    """The official predictor's state over the frames (written as JPEG: its loader's input)."""
    video_dir = tmp / "video"
    video_dir.mkdir(exist_ok=True)
    for t, img in enumerate(frames):
        Image.fromarray(img).save(video_dir / f"{t:05d}.jpg", quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return predictor.init_state(video_path=str(video_dir))


def print_table(rows: list[dict], device: str) -> None:
    official = {(r["model"], r["objects"]): r["fps"] for r in rows if r["mode"] == "official"}
    size = rows[0]["image_size"] if rows else 0
    print(f"\n{device}, bf16, 640x480 input, model at {size} px\n")
    print("| model | objects | mode | FPS | p50 ms | p99 ms | peak GiB | vs official |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = official.get((r["model"], r["objects"]))
        ratio = f"{r['fps'] / ref:.2f}x" if ref and r["mode"] != "official" else ""
        print(
            f"| {r['model']} | {r['objects']} | {r['mode']} | {r['fps']:.1f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['peak_gib']:.2f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
