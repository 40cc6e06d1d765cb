"""The demo's client: starts the nodes, prompts, records, scores and writes the outputs."""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from PIL import Image as PILImage
from PIL import ImageDraw
from rclpy.client import Client
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from sam2_model.data.synthetic import SyntheticConfig, generate_video
from sam2_model.eval.metrics import score_sequence
from sam2_model.eval.synthetic import click_inside, heldout_seed

from .conversions import object_mask, stamp_to_ns
from .demo_support import digest, executable, frame_digests, start_process, wait_until
from .msg import TrackedObjectArray
from .srv import AddPrompt

__all__ = ["DemoSession"]

IMAGE_TOPIC = "/demo/image"
TRACKER = "/sam2_tracker"


def _ros_args(params: dict[str, object]) -> list[str]:
    """Command-line arguments that remap ``image`` to the demo's topic and set ``params``."""
    args = ["--ros-args", "-r", f"image:={IMAGE_TOPIC}"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


class DemoSession:
    """One demo run (see ``sam2_ros.demo``)."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args, self.out = args, out
        self.seed = heldout_seed(args.video)
        self.video = generate_video(self.seed, SyntheticConfig(num_frames=args.frames))
        self.index_of = frame_digests(self.video.frames)
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.frame_of_stamp: dict[int, int] = {}
        self.objects: dict[int, TrackedObjectArray] = {}
        self.overlays: dict[int, np.ndarray] = {}
        self.arrivals: dict[int, float] = {}  # stamp -> monotonic time its objects message came
        self.processing_ms = 0.0  # the node's own measure (diagnostics)
        rclpy.init()
        self.node = rclpy.create_node("sam2_demo_client")
        self.node.create_subscription(Image, IMAGE_TOPIC, self._on_image, 10)
        self.node.create_subscription(TrackedObjectArray, f"{TRACKER}/objects", self._on_objects, 10)
        self.node.create_subscription(Image, f"{TRACKER}/overlay", self._on_overlay, qos_profile_sensor_data)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.spin_thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.spin_thread.start()

    # ---------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image) -> None:  # which frame of the video each stamp carries
        index = self.index_of.get(digest(bytes(msg.data)))
        if index is not None:
            with self.lock:
                self.frame_of_stamp[stamp_to_ns(msg.header.stamp)] = index

    def _on_objects(self, msg: TrackedObjectArray) -> None:
        with self.lock:
            stamp = stamp_to_ns(msg.header.stamp)
            self.objects[stamp] = msg
            self.arrivals[stamp] = time.monotonic()

    def _on_overlay(self, msg: Image) -> None:
        pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        with self.lock:
            self.overlays[stamp_to_ns(msg.header.stamp)] = pixels.reshape(msg.height, msg.width, 3).copy()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            for kv in status.values:
                if kv.key == "processing_ms" and float(kv.value) > 0:
                    self.processing_ms = float(kv.value)

    # ---------------------------------------------------------------- the run
    def run(self) -> int:
        a = self.args
        print(
            f"demo: held-out synthetic video (seed {self.seed}), {a.frames} frames at {a.rate:g} Hz, "
            f"model {a.model} ({a.checkpoint})",
            flush=True,
        )
        client = self._start_tracker()
        camera = self._start_camera()
        started = time.monotonic()
        self._click_objects(client)
        camera.wait(timeout=a.frames / a.rate + 60)
        time.sleep(2.0)
        elapsed = time.monotonic() - started
        return self.report(elapsed)

    def _start_tracker(self) -> Client:
        """Start the tracker node; return a client of its ``add_prompt`` once it is tracking."""
        a = self.args
        log = self.out / "tracker_node.log"
        params = {"checkpoint": a.checkpoint, "model_config": a.model, "device": a.device}
        self.procs.append(start_process([executable("tracker_node"), *_ros_args(params)], log))
        client = self.node.create_client(AddPrompt, f"{TRACKER}/add_prompt")
        if not client.wait_for_service(timeout_sec=120):
            raise TimeoutError(f"demo: the tracker node did not start (see {log})")
        wait_until(lambda: "active: tracking" in log.read_text(), 120, f"the tracker to activate (see {log})")
        return client

    def _start_camera(self) -> subprocess.Popen:
        """Start the camera stand-in playing the held-out video."""
        a = self.args
        params = {
            "source": f"synthetic:{self.seed}:{a.frames}",
            "rate": a.rate,
            "hold_first_frame": 3.0,
            "start_delay": 0.5,
            "wait_for_subscribers": 2,
        }
        proc = start_process([executable("video_publisher"), *_ros_args(params)], self.out / "video_publisher.log")
        self.procs.append(proc)
        return proc

    def _click_objects(self, client: Client) -> None:
        """Once the first frame's results are in, click each object once on that frame."""
        wait_until(
            lambda: any(self.frame_of_stamp.get(s) == 0 for s in list(self.objects)), 60, "the first frame's results"
        )
        stamp0 = next(s for s in list(self.objects) if self.frame_of_stamp.get(s) == 0)
        for obj_id in self.video.object_ids:
            x, y = click_inside(self.video.masks[0][obj_id])
            req = AddPrompt.Request(
                object_id=obj_id, label=f"object {obj_id}", points=[Point(x=x, y=y, z=0.0)], point_labels=[1]
            )
            req.stamp.sec, req.stamp.nanosec = divmod(stamp0, 1_000_000_000)
            future = client.call_async(req)
            wait_until(future.done, 60, "the prompt's answer")
            resp = future.result()
            print(f"demo: click ({x:.0f}, {y:.0f}) -> {resp.message}", flush=True)

    # ---------------------------------------------------------------- outputs
    def report(self, elapsed: float) -> int:
        with self.lock:
            objects = dict(self.objects)
            overlays = dict(self.overlays)
            frame_of = dict(self.frame_of_stamp)
        hw = self.video.frames[0].shape[:2]
        by_frame = {frame_of[s]: m for s, m in objects.items() if s in frame_of}
        ids = self.video.object_ids
        rows, scores = [], {}
        for obj_id in ids:
            frames = sorted(f for f, m in by_frame.items() if any(o.id == obj_id for o in m.objects))
            preds = [object_mask(next(o for o in by_frame[f].objects if o.id == obj_id), hw) for f in frames]
            gts = [self.video.masks[f][obj_id] for f in frames]
            scores[obj_id] = score_sequence(preds, gts, skip_first=bool(frames) and frames[0] == 0)
            rows.append((obj_id, scores[obj_id].j, scores[obj_id].f, scores[obj_id].jf, scores[obj_id].frames))
        with open(self.out / "results.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["object", "J", "F", "J&F", "frames"])
            w.writerows([(i, f"{j:.4f}", f"{fm:.4f}", f"{jf:.4f}", n) for i, j, fm, jf, n in rows])
        ordered = [overlays[s] for s in sorted(overlays)]
        self._write_video(ordered)
        self._contact_sheet(sorted(overlays), overlays, frame_of)
        print(f"\ndemo: {len(by_frame)} of {self.args.frames} frames tracked and published in {elapsed:.1f} s")
        print(self._rates(objects, frame_of))
        print("object   J      F      J&F    frames")
        for obj_id, j, fm, jf, n in rows:
            print(f"{obj_id:>6} {j:.3f}  {fm:.3f}  {jf:.3f}  {n:>6}")
        mean = float(np.mean([r[3] for r in rows])) if rows else 0.0
        print(f"  mean J&F {mean:.3f}")
        print(f"wrote {self.out / 'overlay.mp4'}, {self.out / 'contact_sheet.png'}, {self.out / 'results.csv'}")
        return 0 if ordered and by_frame else 1

    def _rates(self, objects: dict[int, TrackedObjectArray], frame_of: dict[int, int]) -> str:
        """The node's processing time per frame and its output rate once the video plays
        (frame 0 is held while the prompts go in, so it is left out)."""
        with self.lock:
            times = sorted(t for s, t in self.arrivals.items() if s in objects and frame_of.get(s, 0) > 0)
        out_hz = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        capacity = f"up to {1e3 / self.processing_ms:.0f} Hz" if self.processing_ms > 0 else "not reported"
        return (
            f"node: {self.processing_ms:.0f} ms per frame tracking and publishing ({capacity}); "
            f"output {out_hz:.1f} Hz for a {self.args.rate:g} Hz camera"
        )

    def _write_video(self, frames: list[np.ndarray]) -> None:
        import cv2

        if not frames:
            return
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(self.out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), self.args.rate, (w, h))
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        writer.release()

    def _contact_sheet(self, stamps: list[int], overlays: dict[int, np.ndarray], frame_of: dict[int, int]) -> None:
        if not stamps:
            return
        picks = [stamps[round(i * (len(stamps) - 1) / 7)] for i in range(8)]
        h, w = overlays[picks[0]].shape[:2]
        sheet = PILImage.new("RGB", (4 * w, 2 * h), (0, 0, 0))
        draw = ImageDraw.Draw(sheet)
        for k, s in enumerate(picks):
            x, y = (k % 4) * w, (k // 4) * h
            sheet.paste(PILImage.fromarray(overlays[s]), (x, y))
            draw.text((x + 4, y + h - 14), f"frame {frame_of.get(s, '?')}", fill=(255, 255, 255))
        sheet.save(self.out / "contact_sheet.png")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.executor.shutdown()
        self.spin_thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown()
