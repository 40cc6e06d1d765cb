# Source this file (bash/zsh) to use the built package: activates .venv and the colcon
# install space, so `import rclpy`, `import sam2_ros.msg` and `import sam2_model` work, and the
# ros2-vendor packages that `make setup` took (see ROS2_VENDOR in scripts/setup.sh): its
# interfaces (vision_msgs, composition_interfaces) are in the install space, its Python
# packages (launch, launch_ros, message_filters) go on the paths after a sourced distro's.
#   source scripts/env.sh
_SAM2_ROS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
if [ ! -f "$_SAM2_ROS_ROOT/.venv/bin/activate" ] || [ ! -f "$_SAM2_ROS_ROOT/install/setup.sh" ]; then
  echo "sam2_ros is not set up yet: run 'make setup' in $_SAM2_ROS_ROOT" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$_SAM2_ROS_ROOT/.venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then  # ROS 2 from the PyPI wheels inside the venv
  export AMENT_PREFIX_PATH="$_SAM2_ROS_ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
# colcon's setup scripts read unset variables: relax `set -u` while sourcing them.
case "$-" in *u*) _sam2_ros_nounset=1; set +u ;; *) _sam2_ros_nounset=0 ;; esac
COLCON_CURRENT_PREFIX="$_SAM2_ROS_ROOT/install" . "$_SAM2_ROS_ROOT/install/setup.sh"
[ "$_sam2_ros_nounset" = 1 ] && set -u
unset _sam2_ros_nounset
_sam2_ros_vendor_py="$(cat "$_SAM2_ROS_ROOT/.venv/.sam2_ros_ros2_vendor" 2>/dev/null || true)"
if [ -n "$_sam2_ros_vendor_py" ] && [ -d "$_sam2_ros_vendor_py" ]; then
  case ":${PYTHONPATH:-}:" in
    *":$_sam2_ros_vendor_py:"*) ;;
    *) export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$_sam2_ros_vendor_py" ;;
  esac
  # launch finds its share/ (the frontend grammar) through the ament index
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_sam2_ros_vendor_py:"*) ;;
    *) export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$_sam2_ros_vendor_py" ;;
  esac
fi
unset _sam2_ros_vendor_py
