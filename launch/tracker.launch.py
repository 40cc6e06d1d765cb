"""Launch the SAM 2 tracker node, and RViz with its overlay when rviz:=true.

    ros2 launch sam2_ros tracker.launch.py image:=/camera/color/image_raw \
        checkpoint:=/path/to/sam2.1_hiera_tiny.pt [model_config:=sam2.1_hiera_tiny] \
        [device:=auto] [params_file:=my.yaml] [namespace:=robot1] [rviz:=true] \
        [image_transport:=compressed] [detections_topic:=/yolo/detections] \
        [depth:=true depth_image:=/camera/aligned_depth_to_color/image_raw camera_info:=/camera/color/camera_info]

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

PACKAGE = "sam2_ros"
NODE_NAME = "sam2_tracker"
# launch argument -> node parameter it overrides when not empty
OVERRIDES = ("checkpoint", "model_config", "device", "image_transport", "detections_topic", "depth")
BOOL_OVERRIDES = ("depth",)  # given as "true"/"false": passed to the node as booleans


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
            # image_transport's naming: the compressed stream of <image> is <image>/compressed
            remappings=[
                ("image", LaunchConfiguration("image")),
                ("image/compressed", [LaunchConfiguration("image"), "/compressed"]),
                ("depth", LaunchConfiguration("depth_image")),  # used with depth:=true
                ("camera_info", LaunchConfiguration("camera_info")),
            ],
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
                arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "tracker.rviz"])],
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
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node (and of RViz)"),
            DeclareLaunchArgument(
                "rviz", default_value="false", description="open RViz with the overlay (fails if RViz is missing)"
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
