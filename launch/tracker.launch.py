"""Launch the SAM 2 tracker node, and RViz with its overlay when rviz:=true.

    ros2 launch sam2_ros tracker.launch.py image:=/camera/color/image_raw \
        checkpoint:=/path/to/sam2.1_hiera_tiny.pt [model_config:=sam2.1_hiera_tiny] \
        [device:=auto] [params_file:=my.yaml] [namespace:=robot1] [rviz:=true]

Arguments left empty keep the value from params_file (default: config/tracker.yaml).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "sam2_ros"
# launch argument -> node parameter it overrides when not empty
OVERRIDES = ("checkpoint", "model_config", "device")


def _tracker(context):
    overrides = {}
    for name in OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    return [
        Node(
            package=PACKAGE,
            executable="tracker_node",
            name="sam2_tracker",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[("image", LaunchConfiguration("image"))],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "tracker.yaml"]),
                description="YAML file with the node's parameters",
            ),
            DeclareLaunchArgument("checkpoint", default_value="", description="SAM 2 checkpoint (.pt)"),
            DeclareLaunchArgument("model_config", default_value="", description="e.g. sam2.1_hiera_tiny"),
            DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda, cuda:N"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument("rviz", default_value="false", description="open RViz with the overlay"),
            OpaqueFunction(function=_tracker),
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", PathJoinSubstitution([share, "config", "tracker.rviz"])],
                condition=IfCondition(LaunchConfiguration("rviz")),
                output="screen",
            ),
        ]
    )
