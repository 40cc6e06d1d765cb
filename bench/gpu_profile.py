"""Where a tracked frame's GPU time goes (a GPU session's first look; not a comparison).

1. ``attention``: the memory attention's cross-attention shape (one 256-wide head, 4,096
   queries, 7 x 4,096 + 64 keys at 1024 px) and its self-attention, through each SDPA
   backend (flash, memory-efficient, cuDNN): median time, TFLOP/s, and the largest error
   against the math backend in fp32.
2. ``graphs``: with ``cuda_graphs``, the GPU time of each replayed graph (encoder, the
   batched step, the results) and the frame's wall time, per object count.
3. ``kernels``: the eager tracking step under ``torch.profiler``: the kernels that take
   the most GPU time.

    python bench/gpu_profile.py --parts attention graphs kernels --objects 1 8 --out profile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from gpu_fps import make_video  # noqa: E402

from sam2_model import SAM2Tracker, build_sam2  # noqa: E402
from sam2_model.tracker.compiled import bucket_size, steady_state_layout  # noqa: E402
from sam2_model.tracker.steps import eager_step  # noqa: E402


def cuda_time(fn, reps: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of ``fn`` on the GPU (CUDA events around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def attention(objects: list[int]) -> list[dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }
    rows = []
    for b in objects:
        for name, (lq, lk) in {"cross": (4096, 7 * 4096 + 64), "self": (4096, 4096)}.items():
            gen = torch.Generator(device="cuda").manual_seed(b)
            q, k, v = (torch.randn(b, 1, n, 256, device="cuda", generator=gen) for n in (lq, lk, lk))
            with sdpa_kernel(SDPBackend.MATH):
                ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double()).float()
            qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
            flops = 4 * b * lq * lk * 256
            for backend, kind in backends.items():
                row = {"part": "attention", "shape": name, "objects": b, "backend": backend}
                try:
                    with sdpa_kernel(kind):
                        out = F.scaled_dot_product_attention(qb, kb, vb)
                        ms = cuda_time(lambda: F.scaled_dot_product_attention(qb, kb, vb))  # noqa: B023
                    err = float((out.float() - ref).abs().max())
                    row.update(ms=ms, tflops=flops / ms / 1e9, max_err=err)
                except RuntimeError as exc:  # the backend refuses this shape or dtype
                    row.update(error=str(exc).splitlines()[0][:200])
                rows.append(row)
                print(row, flush=True)
    return rows


def graphs(model, objects: list[int], frames: int) -> list[dict]:
    video, clicks = make_video(frames + 30)
    rows = []
    tracker = SAM2Tracker(model, precision="bf16", cuda_graphs=True, max_objects=max(objects))
    tracker.warmup(buckets=tuple(sorted({bucket_size(n) for n in objects})))
    g = tracker._graphs
    for n in objects:
        tracker.reset()
        tracker.track(video[0])
        for k in range(n):
            tracker.add_prompt(k + 1, points=[clicks[k]], labels=[1])
        for t in range(1, 20):
            tracker.track(video[t])
        walls = []
        for t in range(20, 20 + frames):
            torch.cuda.synchronize()
            start = time.perf_counter()
            tracker.track(video[t])
            walls.append((time.perf_counter() - start) * 1e3)
        tokens, n_ptr = steady_state_layout(model, tracker.options)
        step = g._steps[(bucket_size(n), tokens, n_ptr)]
        results = next(c for key, c in g._results.items() if key[1] == n)
        row = {
            "part": "graphs",
            "objects": n,
            "encoder_ms": cuda_time(g._encoder.graph.replay),
            "step_ms": cuda_time(step.graph.replay),
            "results_ms": cuda_time(results.graph.replay),
            "frame_wall_ms": statistics.median(walls),
        }
        row["host_and_rest_ms"] = row["frame_wall_ms"] - row["encoder_ms"] - row["step_ms"] - row["results_ms"]
        rows.append(row)
        print(row, flush=True)
    return rows


def kernels(model, objects: list[int], top: int = 15) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    tracker = SAM2Tracker(model, precision="bf16")
    s, c = model.image_size, model.config
    rows = []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        feats = model.encode_image(torch.randn(1, 3, s, s, device="cuda"))
        for n in objects:
            tokens, n_ptr = steady_state_layout(model, tracker.options)
            memory = torch.randn(n, tokens, c.mem_dim, device="cuda")
            for _ in range(3):
                eager_step(model, tracker.options, feats, memory, memory, n_ptr)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                eager_step(model, tracker.options, feats, memory, memory, n_ptr)
                torch.cuda.synchronize()
            events = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)
            total = sum(e.device_time_total for e in events) / 1e3
            top_k = [{"kernel": e.key[:120], "ms": e.device_time_total / 1e3, "calls": e.count} for e in events[:top]]
            row = {"part": "kernels", "objects": n, "step_gpu_ms": total, "top": top_k}
            rows.append(row)
            print(json.dumps(row, indent=1), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["attention", "graphs", "kernels"])
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--out", default="gpu_profile.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_profile: no CUDA GPU here")
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    model = build_sam2(args.model, device="cuda") if {"graphs", "kernels"} & set(args.parts) else None
    for part in args.parts:
        if part == "attention":
            report["rows"] += attention(args.objects)
        elif part == "graphs":
            report["rows"] += graphs(model, args.objects, args.frames)
        elif part == "kernels":
            report["rows"] += kernels(model, args.objects)
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
