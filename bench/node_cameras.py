"""Several cameras on one node against one node per camera: process memory and frames per
second per camera, in one run.

For N cameras (1, 2, 4 by default), two ways of running them, one after the other:

- ``one node``: the installed ``tracker_node`` with ``cameras:=[cam0, ..., camN-1]``, one
  model in memory, each round's frames encoded as one batch;
- ``N nodes``: N ``tracker_node`` processes with one camera each (today's way), each with
  its own copy of the model.

Each camera plays its own synthetic video (two objects, clicked on the first frame) at
``--rate`` Hz for ``--seconds`` after a settling time, from a process of its own (as camera
drivers do: publishing the four cameras' 230 kB frames from one process lost most frames of
the first two topics, even to separate nodes; likely FastDDS's shared-memory transport,
whose segment per process, 512 kB by default, holds about two such frames); the table gives the frames per second
each camera got on ``~/objects``, and the memory of the node processes: the sum of their
peak resident sets (``VmHWM``) and of their proportional set sizes (``Pss``, shared library
pages split between the processes that map them).

    python bench/node_cameras.py                                   # demo model and SAM 2.1 tiny (random weights), CPU
    python bench/node_cameras.py --models demo --cameras 1 2 --seconds 10
    python bench/node_cameras.py --models tiny --tiny-checkpoint sam2.1_hiera_tiny.pt --device cuda

On this 2-core CPU the N separate nodes share the cores, as N nodes on a robot share its GPU;
each PyTorch process's OpenMP threads then spin against the others' (see ``sam2_ros.worker``),
which ``--split-threads`` avoids by giving each node its share of the cores.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_overhead import Conditions, _wait, camera_qos, image_message, make_video, playback

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ModelChoice:
    """A model the benchmark runs."""

    name: str  # the table's name
    params: dict  # the node's model parameters


@dataclass(frozen=True)
class Result:
    """One way of running N cameras."""

    model: str
    cameras: int
    variant: str  # "one node" or "N nodes"
    peak_rss_mb: float  # sum over the node processes of VmHWM
    pss_mb: float  # sum over the node processes of Pss, at the end
    fps: list[float]  # ~/objects per second, per camera


def memory_mb(pid: int) -> tuple[float, float]:
    """``(peak resident set, proportional set size)`` of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return peak / 1024, pss / 1024


class Run:
    """The node processes of one variant, the cameras and a planner in this process."""

    def __init__(
        self, model: ModelChoice, cameras: int, shared: bool, device: str, log_dir: Path, threads: int, qos: str
    ) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        from sam2_ros.demo_support import executable, start_process

        self.names = [f"cam{i}" for i in range(cameras)]
        self.shared = shared
        self.qos = qos
        params = {**model.params, "device": device, "qos_reliability": qos, "max_objects": 4}
        self.procs, self.logs = [], []
        groups = [self.names] if shared else [[n] for n in self.names]
        for i, group in enumerate(groups):
            node = "sam2_tracker" if shared else f"sam2_tracker_{i}"
            args = ["--ros-args", "-r", f"__node:={node}"]
            if shared:
                args += ["-p", f"cameras:=[{', '.join(group)}]"]
            else:
                args += ["-r", f"image:=/{group[0]}/image"]
            for key, value in params.items():
                args += ["-p", f"{key}:={value}"]
            self.logs.append(log_dir / f"{node}_{cameras}_{'shared' if shared else 'separate'}.log")
            env = {"OMP_NUM_THREADS": str(threads)} if threads else None
            self.procs.append(start_process([executable("tracker_node"), *args], self.logs[-1], env))
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node("node_cameras_bench")
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[tuple[float, int]]] = {n: [] for n in self.names}
        self._connect()

    def _topic(self, camera: str, name: str) -> str:
        i = self.names.index(camera)
        return f"/sam2_tracker/{camera}/{name}" if self.shared else f"/sam2_tracker_{i}/{name}"

    def _connect(self) -> None:
        from sensor_msgs.msg import Image

        from sam2_ros.msg import TrackedObjectArray
        from sam2_ros.srv import AddPrompt

        self.cameras, self.prompts = {}, {}
        for camera in self.names:

            def on_objects(msg, c=camera) -> None:
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                with self.lock:
                    self.arrivals[c].append((time.monotonic(), stamp))

            self.node.create_subscription(TrackedObjectArray, self._topic(camera, "objects"), on_objects, 10)
            self.cameras[camera] = self.node.create_publisher(Image, f"/{camera}/image", camera_qos(self.qos))
            service = "/sam2_tracker/add_prompt" if self.shared else self._topic(camera, "add_prompt")
            self.prompts[camera] = self.node.create_client(AddPrompt, service)

    def start(self, videos: dict[str, tuple[list, list]], timeout: float = 300.0) -> None:
        """Wait for the nodes; per camera, send frame 0 until tracked and click its objects."""
        from geometry_msgs.msg import Point

        from sam2_ros.srv import AddPrompt

        for log in self.logs:
            _wait(lambda log=log: "active: tracking" in log.read_text(), timeout, f"a node (log: {log})")
        self.stamp0 = time.time_ns()
        for camera in self.names:
            frames, clicks = videos[camera]
            first = image_message(frames[0], self.stamp0)
            end = time.monotonic() + 120
            while not any(s == self.stamp0 for _, s in list(self.arrivals[camera])):
                assert time.monotonic() < end, f"frame 0 of {camera} was never tracked"
                self.cameras[camera].publish(first)
                time.sleep(0.3)
            client = self.prompts[camera]
            assert client.wait_for_service(timeout_sec=60), f"no add_prompt for {camera}"
            for obj_id, (x, y) in enumerate(clicks, 1):
                req = AddPrompt.Request(object_id=obj_id, points=[Point(x=float(x), y=float(y))], point_labels=[1])
                req.camera = camera if self.shared else ""
                req.stamp.sec, req.stamp.nanosec = divmod(self.stamp0, 1_000_000_000)
                future = client.call_async(req)
                _wait(future.done, 120, "a prompt's answer")
                assert future.result().success, future.result().message

    def measure(self, rate: float, seconds: float, settle: float) -> list[float]:
        """Every camera at ``rate``, each played by a process of its own (as camera drivers
        are); ``~/objects`` per second of each over the last ``seconds``."""
        start_at = time.time() + 8.0  # the players' imports and discovery
        until = start_at + settle + seconds + 0.5
        timing = ["--rate", str(rate), "--start-at", str(start_at), "--until", str(until), "--stamp0", str(self.stamp0)]
        players = [
            subprocess.Popen([sys.executable, __file__, "--play", camera, "--qos", self.qos, *timing])
            for camera in self.names
        ]
        begin = time.monotonic() + (start_at - time.time())
        window = (begin + settle, begin + settle + seconds)
        for player in players:
            player.wait()
        time.sleep(1.0)
        with self.lock:
            return [sum(window[0] <= t < window[1] for t, _ in self.arrivals[c]) / seconds for c in self.names]

    def memory(self) -> tuple[float, float]:
        peaks, psss = zip(*(memory_mb(p.pid) for p in self.procs), strict=True)
        return sum(peaks), sum(psss)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.executor.shutdown()
        self.node.destroy_node()


def play(camera: str, rate: float, qos: str, start_at: float, until: float, stamp0: int) -> int:
    """The camera stand-in process: ``camera``'s frames back and forth at ``rate`` from the
    wall time ``start_at`` to ``until``."""
    import rclpy
    from sensor_msgs.msg import Image

    frames, _ = camera_video(camera)
    messages = [image_message(f, 0) for f in frames]
    rclpy.init()
    node = rclpy.create_node(f"bench_{camera}")
    publisher = node.create_publisher(Image, f"/{camera}/image", camera_qos(qos))
    time.sleep(max(0.0, start_at - time.time()))
    k, begin = 0, time.monotonic()
    while time.time() < until:
        msg = messages[playback(len(messages), k)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp0 + (k + 1) * 1_000_000, 1_000_000_000)
        publisher.publish(msg)
        k += 1
        time.sleep(max(0.0, begin + k / rate - time.monotonic()))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def camera_video(camera: str) -> tuple[list, list]:
    """A camera's synthetic video (320x240, two objects) and a click inside each object."""
    seed = 10 + int(camera.removeprefix("cam"))
    return make_video(Conditions("", "", "", 240, 320, 2, "best_effort", 24, seed))


def models(names: list[str], tiny_checkpoint: str, tiny_size: int) -> list[ModelChoice]:
    table = {
        "demo": ModelChoice(
            "demo (256 px)", {"checkpoint": str(ROOT / "models" / "sam2_ros_demo.pt"), "model_config": "sam2_ros_demo"}
        ),
        "tiny": ModelChoice(
            f"SAM 2.1 tiny ({tiny_size} px{'' if tiny_checkpoint else ', random weights'})",
            {"model_config": "sam2.1_hiera_tiny", "image_size": tiny_size}
            | ({"checkpoint": tiny_checkpoint} if tiny_checkpoint else {"allow_random_weights": "true"}),
        ),
    }
    return [table[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["demo", "tiny"], choices=["demo", "tiny"])
    parser.add_argument("--cameras", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second of each camera")
    parser.add_argument("--seconds", type=float, default=12.0, help="the measured window")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds before the window")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--qos", default="best_effort", choices=["best_effort", "reliable"], help="image QoS of cameras and nodes"
    )
    parser.add_argument("--tiny-checkpoint", default="", help="official sam2.1_hiera_tiny.pt (default: random weights)")
    parser.add_argument("--tiny-size", type=int, default=512, help="image_size of SAM 2.1 tiny")
    parser.add_argument(
        "--split-threads",
        action="store_true",
        help="give each of the N separate nodes OMP_NUM_THREADS=cores/N (they do not fight over the cores)",
    )
    parser.add_argument("--play", help=argparse.SUPPRESS)  # a camera stand-in process (see play())
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--stamp0", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.play:
        return play(args.play, args.rate, args.qos, args.start_at, args.until, args.stamp0)

    videos = {f"cam{i}": camera_video(f"cam{i}") for i in range(max(args.cameras))}
    results: list[Result] = []
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "node_cameras_bench"
    log_dir.mkdir(exist_ok=True)
    for model in models(args.models, args.tiny_checkpoint, args.tiny_size):
        for n in args.cameras:
            for shared in (True, False):
                if n == 1 and not shared:
                    continue  # one camera: the same node either way
                threads = max(1, (os.cpu_count() or 1) // n) if args.split_threads and not shared else 0
                run = Run(model, n, shared, args.device, log_dir, threads, args.qos)
                try:
                    run.start(videos)
                    fps = run.measure(args.rate, args.seconds, args.settle)
                    peak, pss = run.memory()
                finally:
                    run.close()
                variant = "one node" if shared else f"{n} nodes" + (f", {threads} thread(s) each" if threads else "")
                results.append(Result(model.name, n, variant, peak, pss, fps))
                r = results[-1]
                print(
                    f"{r.model}: {n} camera(s), {variant}: peak RSS {peak:.0f} MB, PSS {pss:.0f} MB, "
                    f"fps per camera {', '.join(f'{f:.1f}' for f in fps)}",
                    flush=True,
                )
    print(f"\ncameras at {args.rate:g} Hz each, 320x240, 2 objects per camera, {args.device}\n")
    print("| model | cameras | how | peak RSS (sum) | PSS (sum) | PSS vs one node | fps per camera (min-max) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        one = next(x for x in results if x.model == r.model and x.cameras == r.cameras and x.variant == "one node")
        print(
            f"| {r.model} | {r.cameras} | {r.variant} | {r.peak_rss_mb:.0f} MB | {r.pss_mb:.0f} MB | "
            f"{r.pss_mb / one.pss_mb:.2f}x | {min(r.fps):.1f}-{max(r.fps):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
