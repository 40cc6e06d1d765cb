"""launch/tracker.launch.py run for real: `launch.LaunchService` runs the installed launch file
in its own process exactly as `ros2 launch sam2_ros tracker.launch.py NAME:=VALUE...` does,
with the committed demo model, and the tests talk to the node over ROS 2.

RViz is not installed on the test machines: `rviz:=true` runs a stand-in `rviz2` (an rclpy
node that subscribes to the Image displays of the `-d` config as RViz does, resolved in its
own namespace), installed in a temporary ament prefix, so the command line that launch gives
rviz2 is exercised for real.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from conftest import moving_shapes_video, requires_ros2

pytestmark = pytest.mark.ros
needs_launch = requires_ros2("launch", "launch_ros")

from ros_helpers import RosClient  # noqa: E402 (sets the test's ROS_DOMAIN_ID first)

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "sam2_ros_demo.pt"
H, W = 120, 160
# topics every node has outside its namespace, and the node's /diagnostics (the ROS convention)
GLOBAL_TOPICS = {"/rosout", "/parameter_events", "/diagnostics"}

# `ros2 launch PACKAGE FILE ARGS...` as ros2launch's launch_a_launch_file runs it
ROS2_LAUNCH = """
import sys

import launch
from ament_index_python.packages import get_package_share_directory
from launch.launch_description_sources import AnyLaunchDescriptionSource

path = get_package_share_directory("sam2_ros") + "/launch/tracker.launch.py"
argv = sys.argv[1:]
service = launch.LaunchService(argv=argv, noninteractive=True)
include = launch.actions.IncludeLaunchDescription(
    AnyLaunchDescriptionSource(path), launch_arguments=[tuple(a.split(":=", 1)) for a in argv]
)
service.include_launch_description(launch.LaunchDescription([include]))
sys.exit(service.run())
"""

# lib/rviz2/rviz2 of the stand-in: subscribes to the enabled Image displays of `-d CONFIG`
# with their QoS, names resolved in the node's namespace (rcl, as RViz does), and appends
# "subscribed TOPIC" and "TOPIC ENCODING WxH" lines to $SAM2_TEST_RVIZ_OUT
RVIZ_STANDIN = """#!{python}
import os
import re
import sys

import rclpy
import rclpy.executors
import yaml
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

config = yaml.safe_load(open(sys.argv[sys.argv.index("-d") + 1]))
rclpy.init(args=sys.argv)
node = rclpy.create_node("rviz")
out = open(os.environ["SAM2_TEST_RVIZ_OUT"], "a", buffering=1)


def displays(items):
    for d in items:
        yield d
        yield from displays(d.get("Displays", []))


subscriptions = []
for d in displays(config["Visualization Manager"]["Displays"]):
    if d["Class"] == "rviz_default_plugins/Image" and d.get("Enabled"):
        topic = d["Topic"]
        best_effort = topic.get("Reliability Policy") == "Best Effort"
        qos = QoSProfile(depth=topic.get("Depth", 5),
                         reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE)
        name = node.resolve_topic_name(topic["Value"])
        cb = lambda m, n=name: out.write(f"{{n}} {{m.encoding}} {{m.width}}x{{m.height}}\\n")
        subscriptions.append(node.create_subscription(Image, topic["Value"], cb, qos))
        out.write(f"subscribed {{name}}\\n")
try:
    rclpy.spin(node)
except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
    pass
"""


class LaunchRun:
    """`ros2 launch sam2_ros tracker.launch.py ARGS` in its own process (and session, as in a
    terminal); every process it starts is recorded."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        script = tmp / "ros2_launch.py"
        script.write_text(ROS2_LAUNCH)
        self.log_path = tmp / "launch.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in wait())
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.started: dict[int, psutil.Process] = {}
        self._root = psutil.Process(self.proc.pid)
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while self._watching:
            try:
                for child in self._root.children(recursive=True):
                    self.started.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc.poll() is None, f"launch exited before logging {text!r}:\n{self.log()}"
            assert time.monotonic() < end, f"launch did not log {text!r} within {timeout:.0f} s:\n{self.log()}"
            time.sleep(0.1)

    def wait(self, timeout: float) -> int:
        """The exit status of launch; fails if it does not exit within ``timeout`` s."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launch still running after {timeout:.0f} s:\n{self.log()}") from None
        self._watching = False
        self._watcher.join()
        return rc

    def interrupt(self, whole_group: bool) -> None:
        """Ctrl-C in the terminal (SIGINT to the process group), or SIGINT to launch alone."""
        if whole_group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)

    def command_lines(self) -> list[str]:
        """Of the processes launch started that still run."""
        lines = []
        for p in self.started.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                lines.append(" ".join(p.cmdline()))
        return lines

    def left_running(self) -> list[str]:
        """Processes that launch started, or that are still in its session, and still run."""
        alive = [p for p in self.started.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for p in psutil.process_iter():
            try:
                if p.pid != self.proc.pid and os.getsid(p.pid) == self.proc.pid and p not in alive:
                    alive.append(p)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        return [f"{p.pid} {' '.join(p.cmdline())}" for p in alive]

    def close(self) -> None:
        """Kills whatever still runs (after a failed test: launch, and orphans it left)."""
        self._watching = False
        self._watcher.join()
        for p in [self._root, *self.started.values()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running():  # (not a new process with a reused pid)
                    p.kill()
        self.proc.wait()
        self._log.close()


@pytest.fixture
def launch_run(tmp_path):
    runs: list[LaunchRun] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> LaunchRun:
        runs.append(LaunchRun(tmp_path, args, env))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


@pytest.fixture(scope="module")
def client():
    c = RosClient("launch_test_client")
    yield c
    c.close()


@pytest.fixture
def rviz_standin(tmp_path):
    """An ament prefix with the stand-in rviz2, and the file it writes what it saw to."""
    prefix = tmp_path / "rviz_prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").touch()
    exe = prefix / "lib" / "rviz2" / "rviz2"
    exe.parent.mkdir(parents=True)
    exe.write_text(RVIZ_STANDIN.format(python=sys.executable))
    exe.chmod(0o755)
    out = tmp_path / "rviz_saw.txt"
    env = {"AMENT_PREFIX_PATH": f"{prefix}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}"}
    env["SAM2_TEST_RVIZ_OUT"] = str(out)
    return env, out


def _rviz_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
        return True
    except PackageNotFoundError:
        return False


def _image(rgb: np.ndarray, stamp_ns: int):
    from sensor_msgs.msg import Image

    msg = Image(encoding="rgb8", height=rgb.shape[0], width=rgb.shape[1], step=rgb.shape[1] * 3)
    msg.header.frame_id = "camera"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.data = rgb.tobytes()
    return msg


def _wait_active(client: RosClient, node: str, run: LaunchRun) -> None:
    """The node's lifecycle state is `active` (its services answer once it spins, after
    configure and activate)."""
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    get_state = client.node.create_client(GetState, f"{node}/get_state")
    end = time.monotonic() + 90
    while not get_state.wait_for_service(timeout_sec=0.5):
        assert run.proc.poll() is None, f"launch exited:\n{run.log()}"
        assert time.monotonic() < end, f"{node}/get_state never appeared:\n{run.log()}"
    client.node.destroy_client(get_state)
    state = client.call(GetState, f"{node}/get_state", GetState.Request(), resend_after=2.0).current_state
    assert state.id == State.PRIMARY_STATE_ACTIVE, f"{state.label}\n{run.log()}"


def _track(client: RosClient, node: str, image_topic: str, camera: str = "") -> None:
    """Frames in, ~/objects (or ~/<camera>/objects) out for each of them, and a box prompt
    that starts object 1."""
    from sensor_msgs.msg import RegionOfInterest

    from sam2_ros.msg import TrackedObjectArray
    from sam2_ros.srv import AddPrompt

    objects_topic = f"{node}/{camera}/objects" if camera else f"{node}/objects"
    objects = client.subscribe(objects_topic, TrackedObjectArray)
    client.wait_publishers(objects_topic)
    client.wait_subscribers(image_topic)
    frames = moving_shapes_video(8, H, W, seed=3)[0]
    stamps = iter(range(time.time_ns(), time.time_ns() + 10**12, 100_000_000))

    def result(stamp: int) -> TrackedObjectArray | None:
        key = divmod(stamp, 1_000_000_000)
        return next((m for m in objects if (m.header.stamp.sec, m.header.stamp.nanosec) == key), None)

    def feed(t: int, resend_after: float = 60.0) -> TrackedObjectArray:
        """Frame t and its ~/objects; sent again with a new stamp after ``resend_after`` s (the
        node's best-effort subscription drops frames sent before it has matched this client)."""
        sent = []
        end = time.monotonic() + 60
        while True:
            sent.append(next(stamps))
            client.publish(image_topic, _image(frames[t], sent[-1]))
            resend = time.monotonic() + resend_after
            while time.monotonic() < min(resend, end):
                found = [r for r in map(result, sent) if r is not None]
                if found:
                    return found[0]
                time.sleep(0.02)
            assert time.monotonic() < end, f"no {objects_topic} for frame {t} within 60 s"

    first = feed(0, resend_after=1.0)
    assert first.objects == [] and first.header.frame_id == "camera"
    req = AddPrompt.Request(object_id=1, label="block", camera=camera)
    req.box = RegionOfInterest(x_offset=98, y_offset=71, width=44, height=28)  # shape 2 on frame 0
    req.stamp = first.header.stamp
    resp = client.call(AddPrompt, f"{node}/add_prompt", req)
    assert resp.success, resp.message
    tracked = [feed(t) for t in range(1, 4)]
    assert all([o.id for o in m.objects] == [1] for m in tracked)
    assert all(m.objects[0].area > 0 for m in tracked)


def _finished(run: LaunchRun, rc: int) -> None:
    """launch exited 0 and nothing it started runs any more."""
    assert rc == 0, run.log()
    assert run.left_running() == [], run.log()


@needs_launch
def test_default_arguments_track_and_ctrl_c_ends_everything(launch_run, client):
    run = launch_run([f"checkpoint:={DEMO_MODEL}", "model_config:=sam2_ros_demo"])
    _wait_active(client, "/sam2_tracker", run)
    _track(client, "/sam2_tracker", "/camera/image_raw")
    assert sum("tracker_node" in c for c in run.command_lines()) == 1
    run.interrupt(whole_group=True)  # Ctrl-C
    _finished(run, run.wait(30))
    # Ctrl-C gives the node two SIGINTs, the terminal's and launch's: the second one must
    # not interrupt its shutdown (it used to exit -2 with a traceback, or hang until SIGKILL)
    assert "process has finished cleanly" in run.log(), run.log()
    assert "KeyboardInterrupt" not in run.log(), run.log()


@needs_launch
def test_namespace_params_file_and_rviz(launch_run, client, rviz_standin, tmp_path):
    params = tmp_path / "robot1_tracker.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "/robot1/sam2_tracker": {
                    "ros__parameters": {
                        "checkpoint": str(DEMO_MODEL),
                        "model_config": "sam2_ros_demo",
                        "device": "cpu",
                        "max_objects": 3,
                        "history_frames": 20,
                        "prompt_timeout": 12.5,
                    }
                }
            }
        )
    )
    env, rviz_saw = rviz_standin
    detector = "detections_topic:=detector/detections"  # a detector in the same namespace
    run = launch_run(["namespace:=robot1", f"params_file:={params}", "rviz:=true", detector], env)
    node = "/robot1/sam2_tracker"
    _wait_active(client, node, run)

    from rcl_interfaces.srv import GetParameters

    names = ["max_objects", "history_frames", "prompt_timeout", "model_config", "device"]
    values = client.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names), resend_after=2)
    got = [values.values[0].integer_value, values.values[1].integer_value, values.values[2].double_value]
    assert got + [v.string_value for v in values.values[3:]] == [3, 20, 12.5, "sam2_ros_demo", "cpu"]

    # everything of the node under /robot1/sam2_tracker/, its input in the namespace too
    graph = client.node
    assert ("sam2_tracker", "/robot1") in graph.get_node_names_and_namespaces()
    trackers = [c for c in run.command_lines() if "tracker_node" in c]
    assert len(trackers) == 1 and "__ns:=/robot1" in trackers[0], trackers
    published = {t for t, _ in graph.get_publisher_names_and_types_by_node("sam2_tracker", "/robot1")}
    services = {s for s, _ in graph.get_service_names_and_types_by_node("sam2_tracker", "/robot1")}
    subscribed = {t for t, _ in graph.get_subscriber_names_and_types_by_node("sam2_tracker", "/robot1")}
    assert {f"{node}/objects", f"{node}/mask", f"{node}/overlay"} <= published
    assert {f"{node}/add_prompt", f"{node}/get_state"} <= services
    assert {"/robot1/camera/image_raw", "/robot1/detector/detections"} <= subscribed
    outside = {n for n in published | services | subscribed if not n.startswith(f"{node}/")}
    assert outside <= GLOBAL_TOPICS | {"/robot1/camera/image_raw", "/robot1/detector/detections"}, outside

    _track(client, node, "/robot1/camera/image_raw")

    # RViz's Image displays see the overlay of this namespace, a colour image (frames go on
    # until they do: rviz2 may subscribe after the frames above, and the overlay is best effort)
    frame = moving_shapes_video(1, H, W)[0][0]
    end = time.monotonic() + 30
    while not (rviz_saw.exists() and " rgb8 " in rviz_saw.read_text()):
        assert time.monotonic() < end, f"rviz2 saw no overlay: {rviz_saw.read_text() if rviz_saw.exists() else ''}"
        client.publish("/robot1/camera/image_raw", _image(frame, time.time_ns()))
        time.sleep(0.2)
    saw = rviz_saw.read_text().splitlines()
    assert f"subscribed {node}/overlay" in saw, saw
    assert {line.split()[0] for line in saw if not line.startswith("subscribed")} == {f"{node}/overlay"}
    assert {line.split()[1] for line in saw if not line.startswith("subscribed")} == {"rgb8"}

    run.interrupt(whole_group=False)  # SIGINT to launch alone: it stops its processes
    _finished(run, run.wait(30))
    for name in ("tracker_node-1", "rviz2-2"):
        assert f"[{name}]: process has finished cleanly" in run.log(), run.log()


@needs_launch
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no checkpoint for /sam2_tracker"),
        (["checkpoint:=/nonexistent/sam2.1_hiera_tiny.pt"], "checkpoint file not found: '/nonexistent/"),
    ],
    ids=["no checkpoint", "missing file"],
)
def test_no_checkpoint_fails_before_starting_anything(launch_run, args, message):
    run = launch_run(args)
    rc = run.wait(30)
    assert rc != 0
    assert message in run.log() and "Nothing was started" in run.log(), run.log()
    assert "process started" not in run.log() and run.started == {}, run.log()
    assert run.left_running() == []


@needs_launch
@pytest.mark.skipif(_rviz_installed(), reason="rviz2 is installed here: the missing-RViz case cannot happen")
def test_rviz_missing_fails_before_starting_the_tracker(launch_run):
    run = launch_run([f"checkpoint:={DEMO_MODEL}", "model_config:=sam2_ros_demo", "rviz:=true"])
    rc = run.wait(30)
    assert rc != 0
    assert "RViz is not installed" in run.log() and "rviz:=false" in run.log(), run.log()
    assert "process started" not in run.log() and run.started == {}, run.log()
    assert run.left_running() == []


# ---------------------------------------------------------------- the generated actions


def _launch_module():
    from ament_index_python.packages import get_package_share_directory

    path = Path(get_package_share_directory("sam2_ros")) / "launch" / "tracker.launch.py"
    spec = importlib.util.spec_from_file_location("tracker_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated_nodes(arguments: dict[str, str], pushed_namespace: str | None = None, module=None):
    """The Node actions the launch file generates for ``arguments`` (nothing is started),
    under an including launch file's PushRosNamespace when ``pushed_namespace`` is given."""
    from launch_ros.actions import Node, PushRosNamespace

    from launch import LaunchContext

    context = LaunchContext()
    context.launch_configurations.update(arguments)
    if pushed_namespace:
        PushRosNamespace(pushed_namespace).execute(context)
    pending = list((module or _launch_module()).generate_launch_description().entities)
    nodes = []
    while pending:
        entity = pending.pop(0)
        if isinstance(entity, Node):
            nodes.append(entity)
        else:
            pending[:0] = entity.visit(context) or []
    return context, nodes


@needs_launch
@pytest.mark.parametrize(
    ("namespace", "pushed", "expected"),
    [
        ("", None, "/"),
        ("robot1", None, "/robot1"),
        ("robot1/left", None, "/robot1/left"),
        ("/fleet/r2", None, "/fleet/r2"),
        ("r3", "site", "/site/r3"),  # PushRosNamespace of an including launch file
        ("", "site", "/site"),
    ],
)
def test_rviz_gets_the_tracker_namespace_and_its_config_resolves_to_the_node_topics(
    rviz_standin, monkeypatch, namespace, pushed, expected
):
    from launch.utilities import perform_substitutions
    from rclpy.expand_topic_name import expand_topic_name

    monkeypatch.setenv("AMENT_PREFIX_PATH", rviz_standin[0]["AMENT_PREFIX_PATH"])
    args = {"checkpoint": str(DEMO_MODEL), "rviz": "true", "namespace": namespace}
    context, nodes = _generated_nodes(args, pushed)
    tracker, rviz = nodes
    assert (tracker.node_package, rviz.node_package) == ("sam2_ros", "rviz2")
    for node in nodes:  # the first step of Node.execute: names, namespace, parameters, remappings
        node._perform_substitutions(context)
    ns = tracker.expanded_node_namespace
    assert (ns, rviz.expanded_node_namespace) == (expected, expected)
    cmd = iter(rviz.cmd)
    for part in cmd:
        if perform_substitutions(context, part) == "-d":
            config = yaml.safe_load(Path(perform_substitutions(context, next(cmd))).read_text())
            break
    else:
        raise AssertionError("rviz2 gets no -d CONFIG")
    topics = {d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]}
    node_topics = {expand_topic_name(f"~/{t}", "sam2_tracker", ns) for t in ("overlay", "markers", "points")}
    assert {expand_topic_name(t, "rviz", ns) for t in topics} == node_topics


@needs_launch
def test_compressed_images_a_detector_and_depth_from_launch_arguments():
    """image_transport's naming: with image:=/cam/color the compressed stream is
    /cam/color/compressed; image_transport:=, detections_topic:= and depth:= reach the node,
    depth_image:= and camera_info:= remap its depth inputs."""
    from launch.utilities import perform_substitutions

    args = {"checkpoint": str(DEMO_MODEL), "image": "/cam/color", "image_transport": "compressed", "depth": "True"}
    args.update(detections_topic="/yolo/detections", depth_image="/cam/aligned_depth", camera_info="/cam/color/info")
    context, (tracker,) = _generated_nodes(args)
    tracker._perform_substitutions(context)
    rules = dict(tracker.expanded_remapping_rules)
    assert rules["image"] == "/cam/color" and rules["image/compressed"] == "/cam/color/compressed"
    assert rules["depth"] == "/cam/aligned_depth" and rules["camera_info"] == "/cam/color/info"
    cmd = []
    for part in tracker.cmd:
        try:
            cmd.append(perform_substitutions(context, part))
        except AttributeError:  # the node's name and namespace arguments: filled in at execute()
            cmd.append("")
    files = [cmd[i + 1] for i, part in enumerate(cmd) if part == "--params-file"]
    overrides = yaml.safe_load(Path(files[-1]).read_text())  # the arguments, after params_file
    (values,) = [v["ros__parameters"] for v in overrides.values()]
    assert values["image_transport"] == "compressed" and values["detections_topic"] == "/yolo/detections"
    assert values["depth"] is True  # a boolean parameter gets a boolean
    with pytest.raises(RuntimeError, match=r"depth:='yes': expected true or false\. Nothing was started\."):
        _generated_nodes({**args, "depth": "yes"})


@needs_launch
def test_two_cameras_from_launch_arguments(launch_run, client, rviz_standin):
    """cameras:=[front,wrist] image:=color/image_raw: one node, each camera's image in its
    namespace (/front/color/image_raw), its outputs under ~/front/; RViz shows front."""
    env, rviz_saw = rviz_standin
    args = ["cameras:=[front,wrist]", "image:=color/image_raw", "rviz:=true"]
    run = launch_run([f"checkpoint:={DEMO_MODEL}", "model_config:=sam2_ros_demo", *args], env)
    _wait_active(client, "/sam2_tracker", run)
    for camera in ("front", "wrist"):
        _track(client, "/sam2_tracker", f"/{camera}/color/image_raw", camera)
    assert sum("tracker_node" in c for c in run.command_lines()) == 1  # one node, one model
    client.wait_for(rviz_saw.exists, 30, what="the RViz stand-in's subscriptions")
    client.wait_for(lambda: "subscribed" in rviz_saw.read_text(), 30, what="the RViz stand-in's subscriptions")
    saw = [line for line in rviz_saw.read_text().splitlines() if line.startswith("subscribed")]
    assert saw == ["subscribed /sam2_tracker/front/overlay"], saw
    run.interrupt(whole_group=True)
    _finished(run, run.wait(30))


@needs_launch
def test_camera_arguments_are_checked_before_anything_starts():
    args = {"checkpoint": str(DEMO_MODEL), "cameras": "[front, wrist]", "image": "cam/color", "depth": "true"}
    context, (tracker,) = _generated_nodes(args)
    tracker._perform_substitutions(context)
    rules = dict(tracker.expanded_remapping_rules)
    assert rules["front/image"] == "front/cam/color"
    assert rules["wrist/image/compressed"] == "wrist/cam/color/compressed"
    assert rules["wrist/depth"] == "wrist/camera/depth/image_raw"
    assert rules["front/camera_info"] == "front/camera/camera_info"
    assert "image" not in rules
    for bad, refused in (
        ({"image": "/cam/color"}, r"image:='/cam/color' is not relative: with cameras:= it names each camera's topic"),
        ({"cameras": "[front, front]"}, r"cameras:='\[front, front\]': parameter cameras: 'front' appears twice"),
        ({"cameras": "front,2"}, r"cameras:='front,2': parameter cameras: '2' is not a valid camera name"),
        ({"cameras": "[front, [wrist]]"}, r"expected a list of names, e.g. \[front,wrist\]"),
    ):
        with pytest.raises(RuntimeError, match=refused):
            _generated_nodes({**args, **bad})


def test_rviz_config_needs_no_tf_and_shows_no_label_image():
    """The fixed frame of the config works without TF: the transformer is RViz's Identity
    one (rviz_common: every frame exists), since with the TF transformer no frame name does
    without a TF tree. The label image (mono8 ids) shows black in RViz: the config views
    the overlay (and the 3D markers and points), never the label image, and says so."""
    text = (ROOT / "config" / "tracker.rviz").read_text()
    manager = yaml.safe_load(text)["Visualization Manager"]
    assert manager["Transformation"]["Current"]["Class"] == "rviz_common/Identity"
    assert manager["Global Options"]["Fixed Frame"]
    shown = [(d["Class"].split("/")[1], d["Topic"]["Value"]) for d in manager["Displays"]]
    assert shown == [
        ("Image", "sam2_tracker/overlay"),
        ("MarkerArray", "sam2_tracker/markers"),  # with depth on
        ("PointCloud2", "sam2_tracker/points"),
    ]
    assert "Do not add ~/mask here" in text


PARAMS_FILES = {
    "wildcard": {"/**": {"ros__parameters": {"checkpoint": "a.pt", "max_objects": 4}}},
    "absolute name": {"/robot1/sam2_tracker": {"ros__parameters": {"checkpoint": "b.pt"}}},
    "relative name": {"robot1/sam2_tracker": {"ros__parameters": {"checkpoint": "c.pt"}}},
    "nested namespace": {"robot1": {"sam2_tracker": {"ros__parameters": {"checkpoint": "d.pt"}}}},
    "any namespace": {"/**/sam2_tracker": {"ros__parameters": {"checkpoint": "e.pt"}}},
    "any node in it": {"/robot1/*": {"ros__parameters": {"checkpoint": "f.pt"}}},
    "no namespace": {"sam2_tracker": {"ros__parameters": {"checkpoint": "g.pt"}}},
    "other robot": {"/robot2/sam2_tracker": {"ros__parameters": {"checkpoint": "h.pt"}}},
    "later wins": {
        "/robot1/sam2_tracker": {"ros__parameters": {"checkpoint": "i.pt"}},
        "/**": {"ros__parameters": {"checkpoint": "j.pt", "allow_random_weights": True}},
    },
    "grouped": {"/**": {"ros__parameters": {"group": {"value": 1}, "checkpoint": "k.pt"}}},
}


@needs_launch
@pytest.mark.parametrize("name", PARAMS_FILES)
def test_launch_reads_a_params_file_as_the_node_does(tmp_path, name):
    """The launch's check of the checkpoint reads params_file as rclpy gives it to the node
    /robot1/sam2_tracker (wildcards, nested and relative names, order)."""
    import rclpy
    from rclpy.node import Node

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(PARAMS_FILES[name], sort_keys=False))
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(path)], context=context)
    try:
        node = Node(
            "sam2_tracker",
            namespace="/robot1",
            context=context,
            automatically_declare_parameters_from_overrides=True,
            start_parameter_services=False,
        )
        ours = {n: p.value for n, p in node.get_parameters_by_prefix("").items()}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    ours = {k: v for k, v in ours.items() if k not in ("use_sim_time", "start_type_description_service")}
    assert _launch_module().file_parameters(str(path), "/robot1/sam2_tracker") == ours


@needs_launch
@pytest.mark.parametrize(
    ("params", "args", "refused"),
    [
        ({"checkpoint": ""}, {}, "no checkpoint for /robot1/sam2_tracker"),
        ({"checkpoint": ""}, {"checkpoint": "DEMO"}, None),
        ({"checkpoint": "DEMO"}, {}, None),
        ({"checkpoint": "/nonexistent.pt"}, {}, "checkpoint file not found: '/nonexistent.pt'"),
        ({"checkpoint": "", "allow_random_weights": True}, {}, None),
        ({"checkpoint": "", "autostart": False}, {}, None),  # configured later through ~/change_state
    ],
    ids=["none", "argument", "file", "missing file", "random weights", "no autostart"],
)
def test_launch_checks_the_checkpoint_before_starting_anything(tmp_path, params, args, refused):
    """What the node would get decides: a launch the node cannot work in raises before any
    action is returned (the tests above run the real ones)."""
    resolve = {"DEMO": str(DEMO_MODEL)}
    params = {k: resolve.get(v, v) for k, v in params.items()}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    arguments = {"namespace": "robot1", "params_file": str(path), **{k: resolve.get(v, v) for k, v in args.items()}}
    module = _launch_module()
    if refused:
        with pytest.raises(module.LaunchError, match=re.escape(refused)):
            _generated_nodes(arguments, module=module)
    else:
        _, nodes = _generated_nodes(arguments, module=module)
        assert [n.node_package for n in nodes] == ["sam2_ros"]
