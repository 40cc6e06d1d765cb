"""Helpers for node tests over real ROS 2 transport: start the installed ``tracker_node``
executable as its own process and talk to it from a client node, as a planner would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Isolate these tests from other ROS 2 graphs on the machine (must precede rclpy.init).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header


def tracker_executable() -> str:
    """The installed ``lib/sam2_ros/tracker_node`` (what ``ros2 run`` starts)."""
    from ament_index_python.packages import get_package_prefix

    return str(Path(get_package_prefix("sam2_ros")) / "lib" / "sam2_ros" / "tracker_node")


class NodeProcess:
    """A tracker node running in its own process (``env``: variables to add or change;
    ``remaps``: more topic remappings); its output goes to a log file."""

    def __init__(
        self,
        log_dir: Path,
        params: dict[str, object],
        name: str = "sam2_tracker",
        image: str = "/camera/image",
        env: dict[str, str] | None = None,
        remaps: dict[str, str] | None = None,
    ):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        args = [sys.executable, tracker_executable(), "--ros-args", "-r", f"__node:={name}", "-r", f"image:={image}"]
        args += ["-r", f"image/compressed:={image}/compressed"]
        for name, target in (remaps or {}).items():
            args += ["-r", f"{name}:={target}"]
        for key, value in params.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text}"]
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.log():
            if not self.alive():
                raise AssertionError(f"node exited before logging {text!r}:\n{self.log()}")
            if time.monotonic() > end:
                raise AssertionError(f"node did not log {text!r} within {timeout:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class RosClient:
    """A client node spun in a background thread: publishes frames, records topics, calls
    services."""

    def __init__(self, name: str = "test_client") -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self.received: dict[str, list] = {}
        self._pubs: dict[str, object] = {}
        self._subs: dict[str, object] = {}

    def subscribe(self, topic: str, msg_type: type, qos: object = 10) -> list:
        """Record every message on ``topic``; returns the (live) list."""
        with self._lock:
            self.received[topic] = []
        self._subs[topic] = self.node.create_subscription(msg_type, topic, lambda m, t=topic: self._record(t, m), qos)
        return self.received[topic]

    def unsubscribe(self, topic: str) -> None:
        """Stop recording ``topic``, if recorded (its recorded messages stay)."""
        if topic in self._subs:
            self.node.destroy_subscription(self._subs.pop(topic))

    def wait_publishers(self, topic: str, timeout: float = 30.0) -> None:
        """Wait until the subscription on ``topic`` is matched with a publisher (discovery is
        asynchronous: a message published before that is lost to this client)."""
        sub = self._subs[topic]
        self.wait_for(lambda: sub.get_publisher_count() > 0, timeout, f"a publisher on {topic}")

    def wait_subscribers(self, topic: str, msg_type: type = Image, timeout: float = 30.0) -> None:
        """Create the publisher on ``topic`` if needed and wait until a subscriber is matched."""
        if topic not in self._pubs:
            self._pubs[topic] = self.node.create_publisher(msg_type, topic, 10)
        pub = self._pubs[topic]
        self.wait_for(lambda: pub.get_subscription_count() > 0, timeout, f"a subscriber on {topic}")

    def wait_unsubscribed(self, topic: str, timeout: float = 30.0) -> None:
        """Wait until no subscriber is matched with this client's publisher on ``topic``."""
        pub = self._pubs[topic]
        self.wait_for(lambda: pub.get_subscription_count() == 0, timeout, f"no subscriber on {topic}")

    def subscribe_sensor(self, topic: str, msg_type: type) -> list:
        return self.subscribe(topic, msg_type, qos_profile_sensor_data)

    def _record(self, topic: str, msg: object) -> None:
        with self._lock:
            self.received[topic].append(msg)

    def publish_image(
        self, topic: str, rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera", encoding: str = "rgb8"
    ) -> Header:
        if topic not in self._pubs:
            self._pubs[topic] = self.node.create_publisher(Image, topic, 10)
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg = Image(header=header, encoding=encoding, height=rgb.shape[0], width=rgb.shape[1], is_bigendian=0)
        msg.step = rgb.shape[1] * (rgb.shape[2] if rgb.ndim == 3 else 1)
        msg.data = np.ascontiguousarray(rgb).tobytes()
        self._pubs[topic].publish(msg)
        return header

    def publish(self, topic: str, msg: object) -> None:
        if topic not in self._pubs:
            self._pubs[topic] = self.node.create_publisher(type(msg), topic, 10)
        self._pubs[topic].publish(msg)

    def call(
        self, srv_type: type, name: str, request: object, timeout: float = 60.0, resend_after: float | None = None
    ) -> object:
        """Call ``name`` and wait for its answer. ``wait_for_service`` can succeed before the
        server's response writer has matched this new client (or on a stopped server that
        discovery has not dropped yet), and then the one request is lost: for read-only
        services pass ``resend_after`` (seconds) to send the request again until one is
        answered. Never for requests that change state."""
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        result = self.answer(client, request, timeout, resend_after)
        self.node.destroy_client(client)
        return result

    def answer(self, client: object, request: object, timeout: float = 60.0, resend_after: float | None = None):
        """Send ``request`` on ``client`` and wait for its answer; ``resend_after``: see :meth:`call`."""
        futures = [client.call_async(request)]
        end = time.monotonic() + timeout
        next_send = time.monotonic() + resend_after if resend_after else float("inf")
        while not any(f.done() for f in futures):
            assert time.monotonic() < end, f"service {client.srv_name} did not answer within {timeout:.0f} s"
            if time.monotonic() > next_send:
                futures.append(client.call_async(request))
                next_send = time.monotonic() + resend_after
            time.sleep(0.01)
        result = next(f for f in futures if f.done()).result()
        for future in futures:
            client.remove_pending_request(future)
        return result

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.02)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
