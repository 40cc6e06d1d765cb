"""What the node costs beyond the tracker: its output rate against ``SAM2Tracker.track`` alone.

In one run, on the same frames and prompts (a synthetic video with N objects, one click in
each on the first frame):

1. the tracker alone, in a process of its own (never sharing the CPU with the node): the
   mean time of ``SAM2Tracker.track`` per frame once the memory bank is full;
2. the installed ``tracker_node`` in its own process, as a user starts it, fed by a camera
   stand-in faster than it can track (``--rate``), without and with an ``~/overlay``
   subscriber: the rate of ``~/objects``, the node's own receive -> publish latency
   (``latency_ms``), its ``processing_ms``, and the frames it dropped;
3. the same node fed slower than it tracks (``--slow-rate``, nothing dropped): the per-frame
   latency with no frame waiting;
4. with ``--profile``: where the node process's time goes under the fast camera (py-spy,
   samples per thread and the functions they were in).

    python bench/node_overhead.py                       # demo model, 640x480, 4 objects, 20 Hz
    python bench/node_overhead.py --rate 30 --objects 8 --profile
    python bench/node_overhead.py --checkpoint sam2.1_hiera_tiny.pt --model sam2.1_hiera_tiny --device cuda

The ratios are what the node is judged by: output rate / tracker rate (targets 0.90 without
an overlay subscriber, 0.80 with one) and latency / tracker time (target 1.3).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Conditions:
    """What every part of the run shares."""

    checkpoint: str  # the model's weights
    model: str  # its configuration name
    device: str  # cpu, cuda, auto
    height: int  # frame height, pixels
    width: int  # frame width, pixels
    objects: int  # objects clicked on the first frame
    qos: str  # reliability of the camera and of the node's image subscription
    frames: int  # frames of the synthetic video (played back and forth)
    seed: int  # the video's seed


@dataclass(frozen=True)
class TrackerTiming:
    """``SAM2Tracker.track`` alone."""

    frame_ms: float  # mean per frame, memory bank full, frames back to back
    frames: int  # frames timed
    paused_frame_ms: float  # mean per frame when frames come at the slow camera's rate (the CPU idles between)


@dataclass(frozen=True)
class NodeTiming:
    """The node under one camera rate."""

    camera_hz: float  # the rate frames were sent at
    overlay: bool  # an ~/overlay subscriber was there
    output_hz: float  # ~/objects messages per second
    latency_ms: float  # mean receive -> publish (the messages' latency_ms)
    processing_ms: float  # the node's diagnostics: worker time per frame
    received: int  # frames the node received in the window
    dropped: int  # frames it replaced before tracking them


# ---------------------------------------------------------------- frames and prompts
def make_video(c: Conditions) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """The frames ``[H, W, 3]`` RGB and one click ``(x, y)`` inside each object on frame 0."""
    from sam2_model.data.synthetic import SyntheticConfig, generate_video
    from sam2_model.eval.synthetic import click_inside

    cfg = SyntheticConfig(
        height=c.height,
        width=c.width,
        num_frames=c.frames,
        min_objects=c.objects,
        max_objects=c.objects,
        num_distractors=0,
        occlusion_prob=0.0,
        exit_prob=0.0,
    )
    video = generate_video(c.seed, cfg)
    return video.frames, [click_inside(video.masks[0][i]) for i in video.object_ids]


def playback(num_frames: int, k: int) -> int:
    """Frame index of the k-th frame sent after frame 0: back and forth, no jumps."""
    period = 2 * (num_frames - 1)
    t = 1 + k % period
    return t if t < num_frames else period - t


# ---------------------------------------------------------------- the camera
def image_message(frame: np.ndarray, stamp_ns: int):
    """``frame [H, W, 3]`` as a ``sensor_msgs/Image`` (rgb8) stamped ``stamp_ns``."""
    from sensor_msgs.msg import Image

    msg = Image(encoding="rgb8", height=frame.shape[0], width=frame.shape[1], step=3 * frame.shape[1])
    msg.header.frame_id = "bench_camera"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.data = frame.tobytes()
    return msg


def camera_qos(qos: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.RELIABLE if qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=5, reliability=reliability)


def play(publisher, frames: list[np.ndarray], rate: float, until: threading.Event) -> None:
    """Publish ``frames`` back and forth at ``rate`` until ``until`` is set."""
    messages = [image_message(f, 0) for f in frames]
    begin, k = time.monotonic(), 0
    while not until.is_set():
        publisher.publish(messages[playback(len(frames), k)])
        k += 1
        time.sleep(max(0.0, begin + k / rate - time.monotonic()))


# ---------------------------------------------------------------- the tracker alone
def _tracker_alone(c: Conditions, timed: int, slow_rate: float, receive: bool, queue) -> None:
    """In a child process: the node's tracker (same options as the node's defaults). With
    ``receive``, the process also subscribes to the camera (an empty callback): what
    receiving the frames alone costs the tracker."""
    import torch

    if receive:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        rclpy.init()
        node = rclpy.create_node("bench_receiver")
        node.create_subscription(Image, "/bench/image", lambda msg: None, camera_qos(c.qos))
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()

    from sam2_model import SAM2Tracker, build_sam2, resolve_device

    device = resolve_device(c.device)
    model = build_sam2(c.model, c.checkpoint, device=device)
    precision = "bf16" if device.type == "cuda" else "fp32"
    tracker = SAM2Tracker(model, history_frames=60, max_objects=32, fill_hole_area=8, precision=precision)
    tracker.warmup()
    frames, clicks = make_video(c)
    tracker.track(frames[0])
    for obj_id, xy in enumerate(clicks, 1):
        tracker.add_prompt(obj_id, points=[xy], labels=[1])
    warm = 2 * model.config.num_maskmem  # until the memory bank is full

    def timed_frame(k: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        tracker.track(frames[playback(len(frames), k)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    if receive:
        queue.put("ready")
        _wait(lambda: node.count_publishers("/bench/image") > 0, 30, "the camera")
        time.sleep(1.0)
    times = [timed_frame(k) for k in range(warm + timed)][warm:]
    paused = []
    for k in range(warm + timed, warm + timed + 12):  # the slow camera: idle between frames
        time.sleep(max(0.0, 1.0 / slow_rate - statistics.mean(times)))
        paused.append(timed_frame(k))
    queue.put(TrackerTiming(1e3 * statistics.mean(times), len(times), 1e3 * statistics.mean(paused)))


def tracker_alone(c: Conditions, timed: int, slow_rate: float, camera_rate: float = 0.0) -> TrackerTiming:
    """The tracker in a process of its own; with ``camera_rate``, while this process plays the
    camera to it at that rate."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_tracker_alone, args=(c, timed, slow_rate, camera_rate > 0, queue))
    proc.start()
    if not camera_rate:
        result = queue.get(timeout=1800)
        proc.join()
        return result
    import rclpy
    from sensor_msgs.msg import Image

    assert queue.get(timeout=1800) == "ready"
    if not rclpy.ok():
        rclpy.init()
    node = rclpy.create_node("bench_camera")
    publisher = node.create_publisher(Image, "/bench/image", camera_qos(c.qos))
    stop = threading.Event()
    frames, _ = make_video(c)
    camera = threading.Thread(target=play, args=(publisher, frames, camera_rate, stop), daemon=True)
    camera.start()
    result = queue.get(timeout=1800)
    stop.set()
    camera.join()
    proc.join()
    node.destroy_node()
    return result


# ---------------------------------------------------------------- the node
class NodeBench:
    """The installed node in its own process, a camera stand-in and a planner in this one."""

    def __init__(self, c: Conditions, log_dir: Path) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        from sam2_ros.demo_support import executable, start_process

        self.c = c
        self.frames, self.clicks = make_video(c)
        params = {"checkpoint": c.checkpoint, "model_config": c.model, "device": c.device, "qos_reliability": c.qos}
        args = ["--ros-args", "-r", "__node:=sam2_tracker", "-r", "image:=/bench/image"]
        for key, value in params.items():
            args += ["-p", f"{key}:={value}"]
        self.log = log_dir / "tracker_node.log"
        self.proc = start_process([executable("tracker_node"), *args], self.log)
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node("node_overhead_bench")
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, int, float]] = []  # (monotonic, stamp ns, latency_ms)
        self.diagnostics: dict[str, str] = {}
        self._subscribe()

    def _subscribe(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from sam2_ros.msg import TrackedObjectArray
        from sam2_ros.srv import AddPrompt

        self.node.create_subscription(TrackedObjectArray, "/sam2_tracker/objects", self._on_objects, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.camera = self.node.create_publisher(Image, "/bench/image", camera_qos(self.c.qos))
        self.prompt = self.node.create_client(AddPrompt, "/sam2_tracker/add_prompt")
        self.overlay_sub = None

    def _on_objects(self, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.arrivals.append((time.monotonic(), stamp, msg.latency_ms))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("sam2_tracker"):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

    def start(self, timeout: float = 300.0) -> None:
        """Wait for the node, send frame 0 until it is tracked, click every object on it."""
        from geometry_msgs.msg import Point

        from sam2_ros.srv import AddPrompt

        _wait(lambda: "active: tracking" in self.log.read_text(), timeout, f"the node (log: {self.log})")
        assert self.prompt.wait_for_service(timeout_sec=60), "no ~/add_prompt"
        self.stamp0 = time.time_ns()
        first = image_message(self.frames[0], self.stamp0)
        end = time.monotonic() + 60
        while not any(s == self.stamp0 for _, s, _ in list(self.arrivals)):
            assert time.monotonic() < end, f"frame 0 was never tracked (log: {self.log})"
            self.camera.publish(first)
            time.sleep(0.2)
        for obj_id, (x, y) in enumerate(self.clicks, 1):
            req = AddPrompt.Request(object_id=obj_id, points=[Point(x=float(x), y=float(y))], point_labels=[1])
            req.stamp.sec, req.stamp.nanosec = divmod(self.stamp0, 1_000_000_000)
            future = self.prompt.call_async(req)
            _wait(future.done, 60, "a prompt's answer")
            assert future.result().success, future.result().message
        self.sent = 0

    def set_overlay(self, on: bool) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        if on and self.overlay_sub is None:
            self.overlay_sub = self.node.create_subscription(
                Image, "/sam2_tracker/overlay", lambda msg: None, qos_profile_sensor_data
            )
        elif not on and self.overlay_sub is not None:
            self.node.destroy_subscription(self.overlay_sub)
            self.overlay_sub = None

    def measure(self, rate: float, seconds: float, settle: float = 3.0) -> NodeTiming:
        """Send frames at ``rate`` for ``settle + seconds``; results of the last ``seconds``."""
        messages = [image_message(f, 0) for f in self.frames]  # converted once: the camera costs little
        period = 1.0 / rate
        begin = time.monotonic()
        window_start = begin + settle
        end = window_start + seconds
        diag_before = None
        k = 0
        while time.monotonic() < end:
            msg = messages[playback(len(self.frames), self.sent)]
            stamp = self.stamp0 + (self.sent + 1) * 1_000_000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            self.camera.publish(msg)
            self.sent += 1
            k += 1
            if diag_before is None and time.monotonic() >= window_start:
                with self.lock:
                    diag_before = dict(self.diagnostics)
            next_at = begin + k * period
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(1.5)  # the diagnostics of the window's end (published every second)
        with self.lock:
            arrivals = [a for a in self.arrivals if window_start <= a[0] < end]
            diag = dict(self.diagnostics)
        diag_before = diag_before or {}

        def delta(key: str) -> int:
            return int(diag.get(key, 0)) - int(diag_before.get(key, 0))

        return NodeTiming(
            camera_hz=rate,
            overlay=self.overlay_sub is not None,
            output_hz=len(arrivals) / seconds,
            latency_ms=statistics.mean(a[2] for a in arrivals) if arrivals else float("nan"),
            processing_ms=float(diag.get("processing_ms", "nan")),
            received=delta("frames_received"),
            dropped=delta("frames_dropped"),
        )

    def close(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.executor.shutdown()
        self.node.destroy_node()


def _wait(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------- the profile
def thread_names(pid: int) -> dict[int, str]:
    """OS thread id -> Python thread name, from ``py-spy dump`` (threads it does not list are
    native: DDS, OpenMP)."""
    done = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {int(m[1]): m[2] for m in re.finditer(r'^Thread (\d+) \([^)]*\)(?:: "([^"]*)")?', done.stdout, re.M)}


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each thread of the process."""
    import psutil

    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def _native_name(pid: int, tid: int) -> str:
    """A thread Python does not know: its OS name (DDS threads have their own; PyTorch's
    OpenMP workers carry the process's)."""
    try:
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "native (ended)"
    return f"native: {'OpenMP worker or other' if name.startswith('python') else name}"


def profile(pid: int, seconds: float, out: Path) -> str:
    """Where the node process's time goes: CPU seconds per thread over ``seconds`` (psutil),
    and py-spy samples of its Python threads (the functions they were in the most)."""
    if shutil.which("py-spy") is None:
        return "py-spy is not installed: pip install py-spy"
    import psutil

    names = thread_names(pid)
    before, bench_before = thread_cpu(pid), sum(psutil.Process().cpu_times()[:2])
    cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100"]
    cmd += ["--format", "raw", "--threads", "--nonblocking", "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    after = thread_cpu(pid)
    bench_cpu = (sum(psutil.Process().cpu_times()[:2]) - bench_before) / seconds
    cpu: dict[str, float] = collections.Counter()
    for tid, used in after.items():
        cpu[names.get(tid) or _native_name(pid, tid)] += used - before.get(tid, 0.0)
    lines = [f"CPU per thread of the node over {seconds:.0f} s (1.00 = one core fully busy):"]
    lines += [f"  {used / seconds:5.2f}  {name}" for name, used in cpu.most_common(10)]
    lines.append(f"  ({bench_cpu:.2f} for this process: the camera and the subscribers)")
    if done.returncode != 0 or not out.exists():
        return "\n".join([*lines, f"py-spy failed: {done.stderr.strip()[-500:]}"])
    per_thread: dict[str, int] = collections.Counter()
    leaves: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        per_thread[frames[0]] += int(count)
        leaves[frames[0]][frames[-1]] += int(count)
    lines.append("py-spy samples (100 Hz, idle threads not sampled), the functions each thread was in:")
    for thread, n in per_thread.most_common(4):
        lines.append(f"  {thread}: {n} samples")
        lines += [f"      {100 * m / n:5.1f}%  {leaf}" for leaf, m in leaves[thread].most_common(6)]
    return "\n".join(lines)


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "sam2_ros_demo.pt"))
    parser.add_argument("--model", default="sam2_ros_demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT")
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="the fast camera, Hz")
    parser.add_argument("--slow-rate", type=float, default=4.0, help="a camera slower than the tracker, Hz")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window of each node run")
    parser.add_argument("--profile", action="store_true", help="py-spy the node under the fast camera")
    parser.add_argument(
        "--qos",
        choices=("reliable", "best_effort"),
        default="reliable",
        help="camera reliability (with Fast DDS here, best-effort frames of 640x480 rgb8 are mostly lost)",
    )
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    c = Conditions(args.checkpoint, args.model, args.device, height, width, args.objects, args.qos, 60, 7)
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    print(f"conditions: {c.model} on {c.device}, {width}x{height} rgb8, {c.objects} objects, {c.qos} camera")
    alone = tracker_alone(c, timed=60, slow_rate=args.slow_rate)
    print(
        f"tracker alone: {alone.frame_ms:.1f} ms per frame ({1e3 / alone.frame_ms:.1f} Hz) back to back, "
        f"{alone.paused_frame_ms:.1f} ms at {args.slow_rate:g} Hz"
    )
    receiving = tracker_alone(c, timed=60, slow_rate=args.slow_rate, camera_rate=args.rate)
    print(
        f"tracker alone, its process receiving the {args.rate:g} Hz camera (empty callback): "
        f"{receiving.frame_ms:.1f} ms per frame ({receiving.frame_ms / alone.frame_ms:.2f}x: the frames' transport)"
    )
    runs: list[NodeTiming] = []
    with tempfile.TemporaryDirectory() as tmp:
        bench = NodeBench(c, Path(tmp))
        try:
            bench.start()
            runs.append(bench.measure(args.rate, args.seconds))
            if args.profile:  # a run of its own: sampling slows the node down
                spy: dict[str, str] = {}
                out = Path(tmp) / "profile.txt"
                thread = threading.Thread(target=lambda: spy.update(report=profile(bench.proc.pid, args.seconds, out)))
                thread.start()
                bench.measure(args.rate, args.seconds)
                thread.join()
            bench.set_overlay(True)
            runs.append(bench.measure(args.rate, args.seconds))
            bench.set_overlay(False)
            runs.append(bench.measure(args.slow_rate, args.seconds))
        finally:
            bench.close()
    print(
        "\ncamera   overlay  output Hz  ratio to tracker  (to receiving)  latency ms  ratio to tracker  "
        "processing ms  dropped"
    )
    for r in runs:  # the slow camera's latency against the tracker's time at that rate
        track_ms = alone.paused_frame_ms if r.camera_hz == args.slow_rate else alone.frame_ms
        print(
            f"{r.camera_hz:5.1f} Hz  {'yes' if r.overlay else 'no':7s}  {r.output_hz:9.2f}  "
            f"{r.output_hz * alone.frame_ms / 1e3:16.2f}  {r.output_hz * receiving.frame_ms / 1e3:14.2f}  "
            f"{r.latency_ms:10.1f}  {r.latency_ms / track_ms:16.2f}  "
            f"{r.processing_ms:13.1f}  {r.dropped}/{r.received}"
        )
    if args.profile:
        print("\n" + spy["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
