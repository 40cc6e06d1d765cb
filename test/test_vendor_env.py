"""The test environment's ROS 2 packages that have no PyPI wheel (launch, launch_ros,
message_filters, vision_msgs, composition_interfaces): `make setup` builds the interfaces of
the ros2-vendor folder (../shared/ros2-vendor, or ROS2_VENDOR) into the install space and
scripts/env.sh puts its Python packages on the paths, unless a sourced ROS 2 distro has them.
Where the folder exists, none of the tests that need them may skip."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import requires_ros2

ROOT = Path(__file__).resolve().parents[1]
VENDOR = Path(os.environ.get("ROS2_VENDOR") or ROOT.parent / "shared" / "ros2-vendor")
PYTHON_PACKAGES = ("launch", "launch_ros", "message_filters")
INTERFACES = ("vision_msgs", "composition_interfaces")
ALL = (*PYTHON_PACKAGES, "vision_msgs.msg", "composition_interfaces.srv")
HAVE_VENDOR = (VENDOR / "python").is_dir() and (VENDOR / "interfaces").is_dir()
DISTRO = os.environ.get("ROS_DISTRO")

needs_a_source = pytest.mark.skipif(
    not HAVE_VENDOR and not DISTRO,
    reason=f"neither a ros2-vendor folder ({VENDOR}, or ROS2_VENDOR) nor a sourced ROS 2 distro",
)


def test_skip_helper_names_what_is_missing_and_how_to_get_it():
    mark = requires_ros2("rclpy", "sam2_no_such_ros_package", "launch_no_such_module")
    assert mark.args == (True,)
    reason = mark.kwargs["reason"]
    assert reason.startswith("sam2_no_such_ros_package, launch_no_such_module not importable")
    assert "ROS2_VENDOR" in reason and "make setup" in reason
    assert requires_ros2("rclpy", "sensor_msgs.msg").args == (False,)


def test_a_folder_named_like_a_package_is_not_the_package(tmp_path, monkeypatch):
    # this repository's launch/ folder must not pass for the `launch` package
    (tmp_path / "sam2_folder_only").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert requires_ros2("sam2_folder_only").args == (True,)


@needs_a_source
def test_every_package_imports_from_the_vendor_folder_or_the_distro():
    import importlib

    modules = {name: importlib.import_module(name) for name in ALL}
    assert all(getattr(m, "__file__", None) for m in modules.values())
    if DISTRO:
        return  # the distro's, or the vendor folder's where the distro lacks one
    for name in PYTHON_PACKAGES:  # the vendor folder's own files, not a copy
        assert Path(modules[name].__file__).resolve().is_relative_to((VENDOR / "python").resolve()), name
    for name in INTERFACES:  # built by make setup into this install space
        where = Path(os.path.abspath(importlib.import_module(name).__file__))  # (symlinks to build/)
        assert where.is_relative_to(ROOT / "install" / name), name


@needs_a_source
def test_launch_finds_its_share_folder():
    from ament_index_python.packages import get_package_share_directory

    assert (Path(get_package_share_directory("launch")) / "frontend" / "grammar.lark").is_file()


@pytest.mark.skipif(not HAVE_VENDOR or bool(DISTRO), reason="checks the ros2-vendor folder without a ROS 2 distro")
def test_env_sh_alone_provides_them():
    """A fresh shell that sources scripts/env.sh (as scripts/test.sh and users do) imports
    every package, from any directory."""
    code = "import " + ", ".join(ALL) + "; print('ok')"
    env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/env.sh && cd / && python -c {code!r}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "ok", out.stdout + out.stderr


def test_vendored_sources_are_not_copied_into_the_project():
    skip = {".git", ".venv", "build", "install", "log", "__pycache__", ".pytest_cache", ".ruff_cache"}
    copies = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        here = Path(folder)
        copies += [str(here / d) for d in dirs if d in (*PYTHON_PACKAGES, *INTERFACES) and d != "launch"]
        if here.name == "launch" and "__init__.py" in files:  # launch/ holds this package's launch files
            copies.append(str(here))
    assert copies == []


@requires_ros2("vision_msgs.msg", "message_filters")
def test_vision_msgs_over_ros_and_message_filters_synchronise_them():
    """The built vision_msgs serialise over DDS and the vendored message_filters pairs them
    with images by stamp, with rclpy from the wheels."""
    import message_filters
    import rclpy
    import ros_helpers  # noqa: F401 (this test run's ROS_DOMAIN_ID)
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("vendor_env_test", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        pairs = []
        subs = [
            message_filters.Subscriber(node, Image, "img"),
            message_filters.Subscriber(node, Detection2DArray, "det"),
        ]
        sync = message_filters.ApproximateTimeSynchronizer(subs, queue_size=10, slop=0.01)
        sync.registerCallback(lambda image, dets: pairs.append((image, dets)))
        pub_img = node.create_publisher(Image, "img", 10)
        pub_det = node.create_publisher(Detection2DArray, "det", 10)
        end = time.monotonic() + 20
        while pub_img.get_subscription_count() == 0 or pub_det.get_subscription_count() == 0:
            assert time.monotonic() < end, "no discovery"
            executor.spin_once(timeout_sec=0.05)
        for t in (1, 2, 3):
            image, dets = Image(encoding="rgb8"), Detection2DArray()
            image.header.stamp.sec = dets.header.stamp.sec = t
            det = Detection2D(id=str(t), bbox=BoundingBox2D(size_x=4.0, size_y=2.0))
            det.bbox.center.position.x = 10.5
            det.results = [ObjectHypothesisWithPose()]
            det.results[0].hypothesis.class_id, det.results[0].hypothesis.score = "cup", 0.75
            dets.detections = [det]
            pub_img.publish(image)
            pub_det.publish(dets)
        while len(pairs) < 3:
            assert time.monotonic() < end, f"{len(pairs)} synchronised pairs"
            executor.spin_once(timeout_sec=0.05)
        assert [(i.header.stamp.sec, d.header.stamp.sec) for i, d in pairs] == [(1, 1), (2, 2), (3, 3)]
        got = pairs[-1][1].detections[0]
        assert (got.id, got.bbox.center.position.x, got.bbox.size_x) == ("3", 10.5, 4.0)
        assert (got.results[0].hypothesis.class_id, got.results[0].hypothesis.score) == ("cup", 0.75)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
