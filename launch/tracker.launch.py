"""Launch the SAM 2 tracker node, and RViz with its overlay when rviz:=true.

    ros2 launch sam2_ros tracker.launch.py image:=/camera/color/image_raw \
        checkpoint:=/path/to/sam2.1_hiera_tiny.pt [model_config:=sam2.1_hiera_tiny] \
        [device:=auto] [params_file:=my.yaml] [namespace:=robot1] [rviz:=true] \
        [image_transport:=compressed] [detections_topic:=/yolo/detections] \
        [depth:=true depth_image:=/camera/aligned_depth_to_color/image_raw camera_info:=/camera/color/camera_info]

Several cameras on one model: cameras:=[front,wrist] image:=color/image_raw. Each camera's
topics are in its own namespace: camera front subscribes to front/color/image_raw (image:=,
depth_image:= and camera_info:= are then relative to each camera's namespace) and publishes
~/front/objects, ~/front/overlay...; with rviz:=true, RViz shows the first camera.

Arguments left empty keep the value from params_file (default: config/tracker.yaml).

Everything is checked before anything starts: without a checkpoint (from checkpoint:= or
params_file; unless the file sets allow_random_weights: true or autostart: false), with a
checkpoint file that does not exist, or with rviz:=true where RViz is not installed, the
launch fails with the reason and leaves nothing running.

The node is /<namespace>/sam2_tracker; its input `image` is resolved in the namespace too
(the default `camera/image_raw` is /robot1/camera/image_raw with namespace:=robot1). RViz
runs in the same namespace and config/tracker.rviz names the node's topics relative to it.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch.substitutions.substitution_failure import SubstitutionFailure
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage, FindPackageShare
from launch_ros.utilities import make_namespace_absolute, prefix_namespace

from launch import LaunchDescription
from sam2_ros.topics import check_camera_names

PACKAGE = "sam2_ros"
NODE_NAME = "sam2_tracker"
# launch argument -> node parameter it overrides when not empty
OVERRIDES = ("checkpoint", "model_config", "device", "image_transport", "detections_topic", "depth")
BOOL_OVERRIDES = ("depth",)  # given as "true"/"false": passed to the node as booleans
# the node's camera inputs and the launch arguments they are remapped to (depth ones with depth:=true)
_INPUTS = (("image", "image"), ("depth", "depth_image"), ("camera_info", "camera_info"))


class LaunchError(RuntimeError):
    """A launch that cannot work: raised before any process starts."""


def _wildcard_regex(node_key: str) -> str:
    """A parameter file's node key as a regex over fully qualified node names, with the
    wildcards rcl gives it (``/**``: any number of name tokens, ``*``: one)."""
    key = "/" + node_key.strip("/")
    parts = re.split(r"(/\*\*|\*)", key)
    return "".join({"/**": "(/[^/]+)*", "*": "[^/]+"}.get(p, re.escape(p)) for p in parts)


def _flatten(params: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def file_parameters(path: str, node_fqn: str) -> dict[str, object]:
    """The parameters a ROS 2 parameter file gives the node ``node_fqn``, matched as the node
    itself does: keys with or without the leading slash, nested namespaces, wildcards; where
    several entries match, the later one wins."""
    with open(path) as f:
        tree = yaml.safe_load(f) or {}
    found: dict[str, object] = {}

    def walk(branch: dict, key: str) -> None:
        for name, value in branch.items():
            if name == "ros__parameters" and isinstance(value, dict):
                if re.fullmatch(_wildcard_regex(key), node_fqn):
                    found.update(_flatten(value))
            elif isinstance(value, dict):
                walk(value, f"{key}/{name}")

    if isinstance(tree, dict):
        walk(tree, "")
    return found


def _tracker_parameters(context, params_file: str, node_fqn: str, overrides: dict) -> dict[str, object]:
    """The parameter values the node will get that the launch can know of: global
    parameters (SetParameter in an including launch file), then params_file, then the
    launch arguments."""
    values: dict[str, object] = {}
    for entry in context.launch_configurations.get("global_params", None) or []:
        if isinstance(entry, tuple):
            values[entry[0]] = entry[1]
        else:
            values.update(file_parameters(str(entry), node_fqn))
    values.update(file_parameters(params_file, node_fqn))
    values.update(overrides)
    return values


def _is_true(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1")


def _check_checkpoint(values: dict[str, object], node_fqn: str, params_file: str) -> None:
    if _is_true(values.get("allow_random_weights", False)) or not _is_true(values.get("autostart", True)):
        return  # random weights (tests), or the node is configured later through ~/change_state
    checkpoint = str(values.get("checkpoint", "") or "")
    if not checkpoint:
        raise LaunchError(
            f"no checkpoint for {node_fqn}: pass checkpoint:=/path/to/sam2.1_hiera_tiny.pt (an official SAM 2 "
            f"checkpoint, with model_config:= matching it) or set `checkpoint` in params_file ({params_file}). "
            "Nothing was started."
        )
    if not Path(checkpoint).expanduser().is_file():
        raise LaunchError(f"checkpoint file not found: {checkpoint!r} (for {node_fqn}). Nothing was started.")


def _check_rviz(context) -> None:
    try:
        ExecutableInPackage("rviz2", "rviz2").perform(context)
    except (LookupError, SubstitutionFailure) as err:  # PackageNotFoundError is a LookupError
        raise LaunchError(
            f"rviz:=true, but RViz is not installed here (rviz2: {err}). Install it (e.g. apt install "
            "ros-$ROS_DISTRO-rviz2) or launch with rviz:=false. Nothing was started."
        ) from err


def _cameras(text: str) -> list[str]:
    """``cameras:=[front,wrist]`` (a YAML list) or ``front,wrist``; checked as the node does."""
    value = yaml.safe_load(text) if text.strip().startswith("[") else text.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LaunchError(f"cameras:={text!r}: expected a list of names, e.g. [front,wrist]. Nothing was started.")
    names = [v.strip() for v in value]
    try:
        check_camera_names(tuple(names))
    except ValueError as err:
        raise LaunchError(f"cameras:={text!r}: {err}. Nothing was started.") from None
    return names


def _remappings(context, cameras: list[str]) -> list[tuple]:
    """The camera topics' remappings: ``image`` -> image:=, ...; with cameras,
    ``front/image`` -> ``front/<image>`` for each camera (the arguments must be relative)."""
    targets = {name: LaunchConfiguration(arg).perform(context) for name, arg in _INPUTS}
    targets["image/compressed"] = targets["image"] + "/compressed"  # image_transport's naming
    if not cameras:
        return list(targets.items())
    for name, arg in _INPUTS:
        if targets[name].startswith(("/", "~")):
            raise LaunchError(
                f"{arg}:={targets[name]!r} is not relative: with cameras:= it names each camera's topic in the "
                f"camera's namespace (e.g. {arg}:={targets[name].lstrip('/~')}). Nothing was started."
            )
    return [(f"{c}/{name}", f"{c}/{target}") for c in cameras for name, target in targets.items()]


def _rviz_config(context, camera: str) -> str:
    """config/tracker.rviz, or a copy of it showing ``camera``'s topics."""
    path = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "tracker.rviz"]).perform(context)
    if not camera:
        return path
    text = Path(path).read_text().replace(f"{NODE_NAME}/", f"{NODE_NAME}/{camera}/")
    with tempfile.NamedTemporaryFile("w", prefix=f"tracker_{camera}_", suffix=".rviz", delete=False) as f:
        f.write(text)
    return f.name


def _nodes(context) -> list[Node]:
    """Checks everything, then returns the nodes: a failed check starts nothing."""
    namespace = LaunchConfiguration("namespace").perform(context)
    params_file = LaunchConfiguration("params_file").perform(context)
    overrides = {}
    for name in OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value and name in BOOL_OVERRIDES:
            if value.lower() not in ("true", "false"):
                raise LaunchError(f"{name}:={value!r}: expected true or false. Nothing was started.")
            overrides[name] = value.lower() == "true"
        elif value:
            overrides[name] = value
    text = LaunchConfiguration("cameras").perform(context)
    cameras = _cameras(text) if text else []
    if text:
        overrides["cameras"] = cameras
    remappings = _remappings(context, cameras)
    # the namespace the node gets (with that of an including launch file's PushRosNamespace)
    full_ns = make_namespace_absolute(prefix_namespace(context.launch_configurations.get("ros_namespace"), namespace))
    node_fqn = prefix_namespace(full_ns, NODE_NAME)
    if not Path(params_file).is_file():
        raise LaunchError(f"params_file not found: {params_file!r}. Nothing was started.")
    _check_checkpoint(_tracker_parameters(context, params_file, node_fqn, overrides), node_fqn, params_file)
    rviz = IfCondition(LaunchConfiguration("rviz")).evaluate(context)
    if rviz:
        _check_rviz(context)

    nodes = [
        Node(
            package=PACKAGE,
            executable="tracker_node",
            name=NODE_NAME,
            namespace=namespace,
            parameters=[params_file, overrides],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        )
    ]
    if rviz:
        # In the tracker's namespace: config/tracker.rviz names the node's topics relative
        # to it (sam2_tracker/overlay), so they resolve to /<namespace>/sam2_tracker/overlay.
        nodes.append(
            Node(
                package="rviz2",
                executable="rviz2",
                namespace=namespace,
                arguments=["-d", _rviz_config(context, cameras[0] if cameras else "")],
                output="screen",
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "image",
                default_value="camera/image_raw",
                description="input image topic (a relative name is resolved in the namespace)",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "tracker.yaml"]),
                description="YAML file with the node's parameters",
            ),
            DeclareLaunchArgument("checkpoint", default_value="", description="SAM 2 checkpoint (.pt)"),
            DeclareLaunchArgument("model_config", default_value="", description="e.g. sam2.1_hiera_tiny"),
            DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda, cuda:N"),
            DeclareLaunchArgument(
                "image_transport", default_value="", description="raw, or compressed (subscribes <image>/compressed)"
            ),
            DeclareLaunchArgument(
                "depth",
                default_value="",
                description="true: also depth and camera_info, 3D positions (see depth_image)",
            ),
            DeclareLaunchArgument(
                "depth_image",
                default_value="camera/depth/image_raw",
                description="depth image aligned to the colour image (16UC1 mm or 32FC1 m), with depth:=true",
            ),
            DeclareLaunchArgument(
                "camera_info",
                default_value="camera/camera_info",
                description="camera_info of the colour image, with depth:=true",
            ),
            DeclareLaunchArgument(
                "detections_topic",
                default_value="",
                description="vision_msgs/Detection2DArray of a detector whose boxes start objects",
            ),
            DeclareLaunchArgument(
                "cameras",
                default_value="",
                description="several cameras on one model, e.g. [front,wrist]: the camera topics are then "
                "relative to each camera's namespace (front/<image>)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node (and of RViz)"),
            DeclareLaunchArgument(
                "rviz", default_value="false", description="open RViz with the overlay (fails if RViz is missing)"
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
