"""The node's lifecycle, its configuration errors, the sam2_prompt client and the launch file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_shapes_video
from ros_helpers import NodeProcess, RosClient
from test_node_ros import NS, node_params, visible_checkpoint  # noqa: F401 (a fixture)

pytestmark = pytest.mark.ros

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

from sam2_ros.msg import TrackedObjectArray  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    c = RosClient("lifecycle_client")
    c.subscribe(f"{NS}/objects", TrackedObjectArray)
    yield c
    c.close()


def _state(client) -> int:
    return client.call(GetState, f"{NS}/get_state", GetState.Request(), resend_after=5.0).current_state.id


def _transition(client, transition_id: int) -> bool:
    req = ChangeState.Request()
    req.transition.id = transition_id
    return client.call(ChangeState, f"{NS}/change_state", req).success


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"checkpoint": None}, "no checkpoint configured. Download an official SAM 2.1 checkpoint"),
        ({"checkpoint": "/nonexistent/sam2.1_hiera_tiny.pt"}, "checkpoint file not found"),
        ({"model_config": "sam2.1_hiera_small"}, "The file is a 'sam2.1_hiera_tiny' checkpoint"),
        ({"device": "cuda:0"}, "no CUDA GPU is available"),
        ({"model_config": "sam3_hiera_huge"}, "unknown model config 'sam3_hiera_huge'"),
        ({"cameras": "[front, wrist, front]"}, "parameter cameras: 'front' appears twice"),
        ({"cameras": "[front, 2nd_wrist]"}, "parameter cameras: '2nd_wrist' is not a valid camera name"),
        (
            {"cameras": "[front, wrist]", "detections_topic": "/yolo/detections"},
            "parameter detections_topic: '/yolo/detections' is absolute, but each of the 2 cameras",
        ),
    ],
    ids=[
        "no checkpoint",
        "missing file",
        "wrong size",
        "no gpu",
        "unknown config",
        "camera twice",
        "bad camera name",
        "absolute detector topic",
    ],
)
def test_configure_fails_with_a_clear_message(tmp_path, client, visible_checkpoint, params, message):  # noqa: F811
    import torch

    if params.get("device") == "cuda:0" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: cuda:0 configures")
    merged = {k: v for k, v in {**node_params(visible_checkpoint), **params}.items() if v is not None}
    proc = NodeProcess(tmp_path, merged)
    try:
        proc.wait_log("staying unconfigured")
        log = proc.log()
        assert "configure failed: " in log and message in log, log
        assert "Traceback" not in log
        assert _state(client) == State.PRIMARY_STATE_UNCONFIGURED
        assert proc.alive()
    finally:
        assert proc.stop() == 0


def test_manual_lifecycle_with_autostart_off(tmp_path, client, visible_checkpoint):  # noqa: F811
    proc = NodeProcess(tmp_path, node_params(visible_checkpoint, autostart=False))
    frames = moving_shapes_video(4, 96, 128)[0]
    objects = client.received[f"{NS}/objects"]
    seen = len(objects)  # messages of nodes started by earlier tests are in there too
    try:
        client.wait_for(
            lambda: client.node.get_service_names_and_types() and _service_ready(client), timeout=60, what="node"
        )
        assert _state(client) == State.PRIMARY_STATE_UNCONFIGURED
        assert _transition(client, Transition.TRANSITION_CONFIGURE)
        assert _state(client) == State.PRIMARY_STATE_INACTIVE
        client.publish_image("/camera/image", frames[0], 5)  # inactive: not subscribed yet
        assert _transition(client, Transition.TRANSITION_ACTIVATE)
        assert _state(client) == State.PRIMARY_STATE_ACTIVE
        client.wait_for(
            lambda: (client.publish_image("/camera/image", frames[1], 6), len(objects) > seen)[1],
            timeout=30,
            what="results",
        )
        assert all(m.header.stamp.nanosec != 5 for m in objects)
        assert _transition(client, Transition.TRANSITION_DEACTIVATE)
        count = len(objects)
        client.wait_unsubscribed("/camera/image")  # inactive: the node has let go of its input
        client.publish_image("/camera/image", frames[2], 7)
        assert _transition(client, Transition.TRANSITION_ACTIVATE)  # and back
        client.wait_for(
            lambda: (client.publish_image("/camera/image", frames[3], 8), len(objects) > count)[1], timeout=30
        )
        assert all(m.header.stamp.nanosec != 7 for m in objects)
    finally:
        assert proc.stop() == 0


def _service_ready(client) -> bool:
    names = [n for n, _ in client.node.get_service_names_and_types()]
    return f"{NS}/get_state" in names


def _prompt_cli(*args: str) -> subprocess.CompletedProcess:
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix("sam2_ros")) / "lib" / "sam2_ros" / "sam2_prompt"
    return subprocess.run([sys.executable, str(exe), *args], capture_output=True, text=True, timeout=120)


def test_sam2_prompt_command_line_client(tmp_path, client, visible_checkpoint):  # noqa: F811
    proc = NodeProcess(tmp_path, node_params(visible_checkpoint))
    frames = moving_shapes_video(3, 96, 128)[0]
    objects = client.received[f"{NS}/objects"]
    seen = len(objects)  # messages of nodes started by earlier tests are in there too
    try:
        proc.wait_log("active: tracking")
        client.wait_for(
            lambda: (client.publish_image("/camera/image", frames[0], 11), len(objects) > seen)[1], timeout=30
        )
        out = _prompt_cli("click", "30", "40", "--id", "3", "--label", "disc")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "object 3 started on frame" in out.stdout and "id 3 area" in out.stdout
        mask = np.zeros((96, 128), np.uint8)
        mask[60:90, 90:125] = 255
        from PIL import Image as PILImage

        PILImage.fromarray(mask).save(tmp_path / "mask.png")
        out = _prompt_cli("mask", str(tmp_path / "mask.png"), "--id", "4")
        assert out.returncode == 0, out.stdout + out.stderr
        out = _prompt_cli("box", "90", "60", "124", "89", "--id", "5")
        assert out.returncode == 0, out.stdout + out.stderr
        out = _prompt_cli("remove", "99")
        assert out.returncode == 1 and "object_id: no object 99" in out.stdout
        out = _prompt_cli("click", "500", "40")
        assert out.returncode == 1 and out.stdout.startswith("points:")
        assert _prompt_cli("reset").returncode == 0
    finally:
        assert proc.stop() == 0
    assert _prompt_cli("--timeout", "1", "reset").returncode == 2  # no node


def test_launch_file_declares_the_documented_arguments():
    path = ROOT / "launch" / "tracker.launch.py"
    tree = ast.parse(path.read_text())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
    }
    assert declared == {
        "image",
        "params_file",
        "checkpoint",
        "model_config",
        "device",
        "namespace",
        "rviz",
        "image_transport",
        "detections_topic",
        "depth",
        "depth_image",
        "camera_info",
        "cameras",
    }


def test_launch_description_builds():
    pytest.importorskip(
        "launch_ros", reason="launch/launch_ros are not installable here (no PyPI wheels): runs on a ROS 2 install"
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("tracker_launch", ROOT / "launch" / "tracker.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.generate_launch_description().entities) == 14  # 13 arguments, 1 function
