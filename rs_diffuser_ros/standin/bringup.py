"""`bringup`: the sim and planner nodes as separate processes, for machines without `ros2 launch`.

Starts what launch/nav.launch.py starts (less rviz2), the same way: the installed
executables (found through the ament index, as `ros2 run` finds them) with
`--ros-args --params-file <share>/config/<node>.yaml` plus command-line overrides.
Prefixes and forwards their output; on Ctrl-C / SIGTERM, or when either node exits,
stops both (SIGINT, then SIGKILL after a grace period) and exits with the first
failure's status.

    bringup --layout default --alpha 0.05
    bringup --planner-param candidates:=8 --sim-param real_time_factor:=2.0
"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ament_index_python.packages import get_package_prefix, get_package_share_directory

PACKAGE = "rs_diffuser_ros"
STOP_GRACE_S = 5.0


def node_command(executable: str, params_file: Path, overrides: list) -> list:
    """argv for one node: the installed executable, its YAML, then `-p name:=value` overrides."""
    exe = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / executable
    if not exe.is_file():
        raise FileNotFoundError(f"{exe} not found: build the package first (./run.sh setup or colcon build)")
    if not params_file.is_file():
        raise FileNotFoundError(f"parameter file {params_file} not found")
    argv = [str(exe), "--ros-args", "--params-file", str(params_file)]
    for override in overrides:
        if ":=" not in override:
            raise ValueError(f"parameter override '{override}' must look like name:=value")
        argv += ["-p", override]
    return argv


def _forward(name: str, stream, out) -> None:
    for line in iter(stream.readline, b""):
        out.write(f"[{name}] {line.decode(errors='replace')}")
        out.flush()


class NodeProcesses:
    """Child node processes, each in its own process group so stopping one stops its children too."""

    def __init__(self):
        self.children = {}

    def start(self, name: str, argv: list) -> None:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=_forward, args=(name, child.stdout, sys.stdout), daemon=True).start()
        self.children[name] = child

    def first_exited(self):
        for name, child in self.children.items():
            if child.poll() is not None:
                return name, child.returncode
        return None

    def stop(self) -> None:
        for child in self.children.values():
            _signal_group(child, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait()


def _signal_group(child: subprocess.Popen, sig) -> None:
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        pass


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bringup", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", help="simulation layout name (sim parameter 'layout')")
    parser.add_argument("--alpha", type=float, help="risk level in (0, 1] (planner parameter 'alpha')")
    parser.add_argument("--risk-mode", choices=["averse", "seeking"], help="planner parameter 'risk_mode'")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], help="planner parameter 'device'")
    parser.add_argument("--checkpoint", help="planner parameter 'checkpoint' (a model file, or a shipped model's name: general, two_risks, ...)")
    parser.add_argument("--real-time-factor", type=float, help="sim parameter 'real_time_factor'")
    parser.add_argument("--planner-param", action="append", default=[], metavar="NAME:=VALUE")
    parser.add_argument("--sim-param", action="append", default=[], metavar="NAME:=VALUE")
    parser.add_argument("--config-dir", type=Path,
                        help="directory with planner.yaml and sim.yaml (default: the installed share/config)")
    parser.add_argument("--no-planner", action="store_true", help="start only the sim node")
    parser.add_argument("--no-sim", action="store_true", help="start only the planner node")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = args.config_dir or Path(get_package_share_directory(PACKAGE)) / "config"
    sim_overrides = list(args.sim_param)
    if args.layout is not None:
        sim_overrides.append(f"layout:={args.layout}")
    if args.real_time_factor is not None:
        sim_overrides.append(f"real_time_factor:={args.real_time_factor}")
    planner_overrides = list(args.planner_param)
    for name, value in (("alpha", args.alpha), ("risk_mode", args.risk_mode), ("device", args.device),
                        ("checkpoint", args.checkpoint)):
        if value is not None:
            planner_overrides.append(f"{name}:={value}")

    commands = {}
    try:
        if not args.no_sim:
            commands["sim_node"] = node_command("sim_node", config / "sim.yaml", sim_overrides)
        if not args.no_planner:
            commands["planner_node"] = node_command("planner_node", config / "planner.yaml", planner_overrides)
    except (FileNotFoundError, ValueError) as error:
        print(f"bringup: {error}", file=sys.stderr)
        return 2

    stop_requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_requested.set())
    nodes = NodeProcesses()
    status = 0
    try:
        for name, argv_ in commands.items():
            nodes.start(name, argv_)
            print(f"[bringup] started {name} (pid {nodes.children[name].pid}): {' '.join(argv_)}", flush=True)
        while not stop_requested.wait(0.2):
            exited = nodes.first_exited()
            if exited:
                name, status = exited
                print(f"[bringup] {name} exited with status {status}; stopping the others", flush=True)
                break
    finally:
        nodes.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
