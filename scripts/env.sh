# Source this file (bash/zsh) to use the built package: activates .venv and the colcon
# install space, so `import rclpy`, `import sam2_ros.msg` and `import sam2_model` work.
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
