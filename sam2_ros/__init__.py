"""sam2_ros: the ROS 2 node running SAM 2 as a live, promptable tracker.

The generated interfaces live in ``sam2_ros.msg`` and ``sam2_ros.srv`` (after a colcon
build); the node and its pure-Python helpers are added by the node issue.
"""
