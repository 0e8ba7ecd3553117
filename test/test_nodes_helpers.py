"""Shared pieces of the node tests: an isolated DDS domain, node processes that are always
cleaned up, and an in-test rclpy probe node to publish inputs and record outputs.

Each test gets its own random ROS_DOMAIN_ID (other engineers run tests on this machine at
the same time) and traffic stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
Nodes run as separate processes, each in its own process group, killed at teardown.
"""
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import rclpy
from ament_index_python.packages import get_package_prefix
from rclpy.executors import SingleThreadedExecutor

PACKAGE = "rs_diffuser_ros"
REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"


def executable(name: str) -> str:
    """The installed launcher, found as `ros2 run` finds it."""
    path = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / name
    assert path.is_file(), f"{path} missing: run ./run.sh setup"
    return str(path)


def make_random_checkpoint(path: Path, diffusion_steps: int | None = None) -> Path:
    """A real model file (the core's format) with randomly initialised weights, small and fast.

    Enough for behaviour that does not depend on what the model learned (watchdog, parameter
    handling, determinism); tests of driving use the shipped default model instead.
    """
    from rs_diffuser_ros.core import CoreConfig, RiskSensitivePlanner
    from rs_diffuser_ros.core.checkpoint import save_checkpoint

    config = CoreConfig.from_yaml(CONFIG / "model.yaml")
    if diffusion_steps is not None:  # a model trained with another number of diffusion steps
        config.model.diffusion_steps = diffusion_steps
        config.planner.ddim_steps = min(config.planner.ddim_steps, diffusion_steps)
    planner = RiskSensitivePlanner.from_config(config, device="cpu", seed=0)
    return save_checkpoint(path, planner.config, planner.normalizers, planner.networks)


class NodeProcesses:
    def __init__(self, env: dict, log_dir: Path):
        self.env, self.log_dir, self.procs = env, log_dir, []

    def start(self, argv, name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO)
        proc.log_path = self.log_dir / f"{name}.log"
        self.procs.append(proc)
        return proc

    def log(self, proc) -> str:
        return proc.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited with status {proc.returncode}:\n{self.log(proc)[-3000:]}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10.0
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def ros_env():
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.randint(120, 230))  # 0-119 left to other test files
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def nodes(ros_env, tmp_path):
    processes = NodeProcesses(ros_env, tmp_path)
    yield processes
    processes.stop_all()


class Probe:
    """An rclpy node in the test process, spun on a background thread, on the test's domain."""

    def __init__(self, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f"probe_{os.getpid()}", context=self.context,
                                      start_parameter_services=False)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us at teardown
                break

    def record(self, msg_type, topic: str, qos=10) -> None:
        """Keep every message on `topic` as (monotonic arrival time, message)."""
        self.received[topic] = []

        def keep(msg):
            with self.lock:
                self.received[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, keep, qos)

    def publish_periodically(self, msg_type, topic: str, make_msg, period_s: float):
        """Publish make_msg() every period_s from the probe's thread; returns (publisher, timer)."""
        publisher = self.node.create_publisher(msg_type, topic, 10)
        timer = self.node.create_timer(period_s, lambda: publisher.publish(make_msg()))
        return publisher, timer

    def messages(self, topic: str, since: float = -float("inf")):
        with self.lock:
            return [(t, m) for t, m in self.received[topic] if t >= since]

    def wait_for(self, predicate, timeout: float, what: str, nodes: "NodeProcesses" = None):
        """predicate()'s first truthy value; fails at the time-out, or at once if a node process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            if nodes is not None:
                nodes.assert_running()
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


@pytest.fixture
def probe(ros_env):
    p = Probe(int(ros_env["ROS_DOMAIN_ID"]))
    yield p
    p.close()


def run_param(env, *args, timeout=60):
    """The `param` executable, as a person would run it."""
    return subprocess.run([executable("param"), *args], env=env, capture_output=True, text=True, timeout=timeout)
