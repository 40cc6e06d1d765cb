"""Parity per precision on a GPU.

1. fp32 on the GPU vs fp32 on the CPU (ours, same weights, frames and prompts: a click, a
   box and a mask on frame 0, a correction click on frame 7), with TF32 off and on:
   per-object mask IoU and object-score error against the tracker issue's bar (IoU >= 0.99,
   object score within 1e-3 relative).
2. bf16: ours under bf16 autocast vs the official SAM2VideoPredictor under bf16 autocast on
   the same JPEG frames (3 objects clicked on frame 0, 100 frames): mask IoU per object and
   frame (bar 0.98), with PIL preprocessing (the official loader's pixels), with the
   on-device preprocessing, and with that and CUDA graphs (``cuda_graphs=True``).

    python bench/gpu_parity.py --out parity.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "test"), str(ROOT / "bench"), str(ROOT)]

from conftest import build_official  # noqa: E402
from gpu_fps import make_video  # noqa: E402

from sam2_model import SAM2Tracker, build_sam2  # noqa: E402

DEV = "cuda"  # the device compared (--device cpu: a dry run of the script)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def scripted_session(tracker: SAM2Tracker, frames, clicks, box, mask) -> list[dict]:
    """Frame 0: object 1 by a click, 2 by a box, 3 by a mask; frame 7: a correction click."""
    out = []
    for t, img in enumerate(frames):
        res = tracker.track(img)
        if t == 0:
            tracker.add_prompt(1, points=[clicks[0]], labels=[1])
            tracker.add_prompt(2, box=box)
            tracker.add_prompt(3, mask=mask)
        if t == 7:
            tracker.add_prompt(1, points=[[clicks[0][0] + 25, clicks[0][1]]], labels=[0])
        out.append({i: (r.mask, r.object_score) for i, r in res.objects.items()})
    return out


def compare(ours: list[dict], ref: list[dict]) -> dict:
    ious, score_err = [], []
    for a, b in zip(ours, ref):
        for obj_id, (mask, score) in b.items():
            ious.append(iou(a[obj_id][0], mask))
            score_err.append(abs(a[obj_id][1] - score) / max(abs(score), 1e-6))
    return {"min_iou": min(ious), "mean_iou": float(np.mean(ious)), "max_score_rel_err": max(score_err)}


def fp32_gpu_vs_cpu(name: str, size: int, num_frames: int) -> dict:
    ref = build_official(name, size)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "w.pt"
        torch.save({"model": ref.state_dict()}, ckpt)
        frames, clicks = make_video(num_frames, 3)
        yy, xx = np.mgrid[:480, :640]
        disc3 = (yy - 75) ** 2 + (xx - 400) ** 2 < 30**2  # object 3 on frame 0
        box = [210.0, 45.0, 270.0, 105.0]
        cpu = SAM2Tracker(build_sam2(name, ckpt, image_size=size), fill_hole_area=0)
        reference = scripted_session(cpu, frames, clicks, box, disc3)
        result = {"model": name, "image_size": size, "frames": num_frames}
        for tf32 in (False, True):
            gpu = SAM2Tracker(
                build_sam2(name, ckpt, image_size=size, device=DEV),
                fill_hole_area=0,
                allow_tf32=tf32,
                preprocess="pil",
            )
            result[f"tf32_{tf32}"] = compare(scripted_session(gpu, frames, clicks, box, disc3), reference)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return result


def bf16_vs_official(name: str, size: int, num_frames: int, objects: int = 3) -> dict:
    ref = build_official(name, size)
    with torch.no_grad():  # random weights: keep the objects visible
        ref.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(10.0)
    frames, clicks = make_video(num_frames, objects)
    result = {"model": name, "image_size": size, "frames": num_frames, "objects": objects}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "w.pt"
        torch.save({"model": ref.state_dict()}, ckpt)
        video = Path(tmp) / "video"
        video.mkdir()
        for t, img in enumerate(frames):
            Image.fromarray(img).save(video / f"{t:05d}.jpg", quality=95)
        decoded = [np.asarray(Image.open(video / f"{t:05d}.jpg").convert("RGB")) for t in range(num_frames)]
        ref = ref.to(DEV)
        official: list[dict] = [{} for _ in range(num_frames)]
        with warnings.catch_warnings(), torch.inference_mode(), torch.autocast(DEV, dtype=torch.bfloat16):
            warnings.simplefilter("ignore")
            state = ref.init_state(video_path=str(video))
            for k in range(objects):
                pts = np.array([clicks[k]], np.float32)
                ref.add_new_points_or_box(state, 0, k + 1, points=pts, labels=np.array([1], np.int32))
            for t, ids, masks in ref.propagate_in_video(state):
                official[t] = {i: ((masks[j, 0] > 0).cpu().numpy(), 0.0) for j, i in enumerate(ids)}
        del ref, state
        ours = build_sam2(name, ckpt, image_size=size, device=DEV)
        for mode in ("pil", "device", "graphs") if DEV == "cuda" else ("pil", "device"):
            opts = {"preprocess": "device", "cuda_graphs": True} if mode == "graphs" else {"preprocess": mode}
            tracker = SAM2Tracker(ours, precision="bf16", fill_hole_area=0, **opts)
            if mode == "graphs":
                tracker.warmup(buckets=(1, 4))  # the objects' first frames run uncaptured, then bucket 4
            mine = []
            for t, img in enumerate(decoded):
                res = tracker.track(img)
                if t == 0:  # frame 0: the prompts' answers (objects are independent)
                    answers = {k + 1: tracker.add_prompt(k + 1, points=[clicks[k]], labels=[1]) for k in range(objects)}
                    mine.append({i: (r.mask, 0.0) for i, r in answers.items()})
                    continue
                mine.append({i: (r.mask, 0.0) for i, r in res.objects.items()})
            per_frame = [min(iou(a[i][0], b[i][0]) for i in b) for a, b in zip(mine, official)]
            result[f"preprocess_{mode}"] = {
                "min_iou": min(per_frame),
                "mean_iou": float(np.mean(per_frame)),
                "frames_below_0.98": int(sum(v < 0.98 for v in per_frame)),
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--fp32-size", type=int, default=512)
    parser.add_argument("--fp32-frames", type=int, default=24)
    parser.add_argument("--bf16-size", type=int, default=1024)
    parser.add_argument("--bf16-frames", type=int, default=100)
    parser.add_argument("--skip", nargs="*", default=[], choices=["fp32", "bf16"])
    parser.add_argument("--out", default="gpu_parity.json")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    global DEV
    DEV = args.device
    torch.set_num_threads(8)
    report = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}
    start = time.monotonic()
    if "fp32" not in args.skip:
        report["fp32_gpu_vs_cpu"] = fp32_gpu_vs_cpu(args.model, args.fp32_size, args.fp32_frames)
        print(json.dumps(report["fp32_gpu_vs_cpu"]), f"({time.monotonic() - start:.0f} s)", flush=True)
    if "bf16" not in args.skip:
        report["bf16_vs_official"] = bf16_vs_official(args.model, args.bf16_size, args.bf16_frames)
        print(json.dumps(report["bf16_vs_official"]), f"({time.monotonic() - start:.0f} s)", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
