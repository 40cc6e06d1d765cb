"""``video_publisher``: a camera stand-in that plays a video file, an image folder or a
synthetic video as ``sensor_msgs/Image`` (rgb8) on ``image``.

    ros2 run sam2_ros video_publisher --ros-args -p source:=/path/clip.mp4 -p rate:=15.0 \\
        -r image:=/camera/image
"""

from __future__ import annotations

import time

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from .conversions import array_to_image
from .frame_source import open_frames

__all__ = ["VideoPublisher", "main"]


class VideoPublisher(Node):
    """Publishes the frames of ``source`` at ``rate`` Hz with the node clock's stamps."""

    def __init__(self) -> None:
        super().__init__("video_publisher")
        self.declare_parameter(
            "source",
            "synthetic:1",
            ParameterDescriptor(description="video file, image folder or synthetic:SEED[:FRAMES]"),
        )
        self.declare_parameter("rate", 15.0, ParameterDescriptor(description="frames per second"))
        self.declare_parameter("frame_id", "camera", ParameterDescriptor(description="header frame_id"))
        self.declare_parameter("loop", False, ParameterDescriptor(description="start again at the end"))
        self.declare_parameter(
            "hold_first_frame",
            0.0,
            ParameterDescriptor(description="seconds to wait after the first frame (time to prompt it)"),
        )
        self.declare_parameter(
            "start_delay", 0.0, ParameterDescriptor(description="seconds to wait before the first frame")
        )
        self.declare_parameter(
            "wait_for_subscribers", 0, ParameterDescriptor(description="publish once this many subscribers are matched")
        )
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.publisher = self.create_publisher(Image, "image", qos)

    def param(self, name: str):
        return self.get_parameter(name).value

    def play(self) -> int:
        """Publish every frame once (or forever with ``loop``); returns the frames sent."""
        period = 1.0 / max(float(self.param("rate")), 1e-3)
        wanted = int(self.param("wait_for_subscribers"))
        while self.publisher.get_subscription_count() < wanted:  # discovery takes a moment
            time.sleep(0.05)
        time.sleep(float(self.param("start_delay")))
        sent = 0
        while True:
            next_time = time.monotonic()
            for k, frame in enumerate(open_frames(str(self.param("source")))):
                header = Header(stamp=self.get_clock().now().to_msg(), frame_id=str(self.param("frame_id")))
                self.publisher.publish(array_to_image(frame, "rgb8", header))
                sent += 1
                next_time += period
                if k == 0 and sent == 1:
                    next_time += float(self.param("hold_first_frame"))
                time.sleep(max(0.0, next_time - time.monotonic()))
            if not self.param("loop"):
                return sent


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = VideoPublisher()
    try:
        sent = node.play()
        node.get_logger().info(f"published {sent} frames from {node.param('source')}")
    except ValueError as err:
        node.get_logger().error(str(err))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
