"""End to end over real DDS: `bringup` starts the sim and planner nodes as separate processes
from config/*.yaml; the robot drives to the goal on the shipped model, `snapshot` renders
the drive, and Ctrl-C stops both nodes. Each test starts its own bring-up (no test depends on
another having run first).

Needs the trained model rs_diffuser_ros/models/default.safetensors (RSD_NODES_CHECKPOINT
names another): a randomly initialised one does not drive anywhere.
"""
import json
import os
import random
import re
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from matplotlib.image import imread
from nav_msgs.msg import Odometry
from std_msgs.msg import String

from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import odometry_to_state
from rs_diffuser_ros.shipped import model_path
from test_nodes_helpers import NodeProcesses, Probe, executable
from test_nodes_planner_dds import STOP_SLACK_S, STOP_WITHIN_S, is_zero

pytestmark = pytest.mark.timeout(240)

START, GOAL = [1.5, 4.0, 0.0], [10.5, 4.0]  # default layout: the straight line crosses the risky passage
REAL_TIME_FACTOR = 1.0
GOAL_TOLERANCE = 0.3  # the layout's and config/planner.yaml's
DRIVE_TIMEOUT_S = 120.0
STOP_EARLY_S = 1.0  # how long before the sim's goal event the planner's stop may come (it plans from where it is now)


@contextmanager
def bringup_session(tmp_path, layout: str, alpha: float, checkpoint: str, extra_args=()):
    """`bringup` (sim + planner, CPU, one torch thread, the default start and goal) in a domain of its own, with
    a probe recording sim_events, odom and cmd_vel; everything it started is gone when the block ends."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(120, 230)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    processes = NodeProcesses(env, tmp_path)
    probe = Probe(int(env["ROS_DOMAIN_ID"]))
    probe.record(String, "sim_events", topics.EVENTS)
    probe.record(Odometry, "odom")
    probe.record(Twist, "cmd_vel")
    argv = [executable("bringup"), "--layout", layout, "--alpha", str(alpha), "--checkpoint", checkpoint, *extra_args,
            "--sim-param", "seed:=3", "--sim-param", f"start:={START}", "--sim-param", f"goal:={GOAL}",
            "--planner-param", "torch_threads:=1", "--planner-param", "device:=cpu"]
    proc = processes.start(argv, "bringup")
    run = SimpleNamespace(env=env, probe=probe, nodes=processes, bringup=proc, log=lambda: processes.log(proc))
    try:
        yield run
    finally:
        processes.stop_all()
        for pid in child_pids(run.log()):  # never leave a node behind, whatever happened above
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        probe.close()


@pytest.fixture
def bringup(tmp_path):
    """Starts `bringup` on the shipped model; everything it started is gone at teardown."""
    checkpoint = Path(os.environ.get("RSD_NODES_CHECKPOINT") or model_path())
    if not checkpoint.is_file():
        pytest.fail(f"the trained model {checkpoint} is missing (the lead ships it; RSD_NODES_CHECKPOINT names another)")
    with bringup_session(tmp_path, "default", 0.05, str(checkpoint),
                         ("--real-time-factor", str(REAL_TIME_FACTOR))) as run:
        yield run


def child_pids(log: str):
    return [int(pid) for pid in re.findall(r"\[bringup\] started \w+ \(pid (\d+)\)", log)]


def events(probe):
    return [json.loads(m.data) for _, m in probe.messages("sim_events")]


def test_robot_reaches_the_goal_through_the_nodes_and_snapshot_renders_the_drive(bringup, tmp_path):
    run, probe = bringup, bringup.probe
    probe.wait_for(lambda: len(probe.messages("cmd_vel")) >= 3, 90, "the planner to drive", run.nodes)

    # While the robot drives: the snapshot shows map, risky region and candidates coloured by risk.
    png = tmp_path / "snapshot.png"
    result = subprocess.run([executable("snapshot"), "--output", str(png), "--timeout", "60"], env=run.env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + run.log()[-3000:]
    image = imread(png)[..., :3]
    red = np.sum((image[..., 0] > 0.75) & (image[..., 1] < 0.4) & (image[..., 2] < 0.4))
    green = np.sum((image[..., 1] > 0.6) & (image[..., 0] < 0.45) & (image[..., 2] < 0.5))
    region = np.sum((image[..., 0] > 0.9) & (image[..., 1] > 0.5) & (image[..., 1] < 0.85) & (image[..., 2] < 0.6))
    assert red > 30 and green > 30, "no candidates coloured by risk"
    assert region > 1000, "no risky region drawn"

    probe.wait_for(lambda: any(e["event"] in ("goal_reached", "time_limit") for e in events(probe)),
                   DRIVE_TIMEOUT_S, "the episode to end", run.nodes)
    kinds = [e["event"] for e in events(probe)]
    assert "goal_reached" in kinds, f"events: {events(probe)}\nlog:\n{run.log()[-3000:]}"
    reached = next(e for e in events(probe) if e["event"] == "goal_reached")
    assert np.hypot(reached["x"] - GOAL[0], reached["y"] - GOAL[1]) < GOAL_TOLERANCE + 0.05
    assert "collision" not in kinds
    # The planner stops the robot at the goal: its commands end in zero ones, then it idles until a new goal. The
    # first of them may come a little before the sim's event: the planner plans from the odometry moved on by its
    # age, so it can see the goal a tick or two before the sim reports it (the robot coasts in).
    reached_at = next(t for t, m in probe.messages("sim_events") if json.loads(m.data)["event"] == "goal_reached")
    time.sleep(STOP_WITHIN_S + STOP_SLACK_S)
    commands = probe.messages("cmd_vel")
    assert is_zero(commands[-1][1]), f"the last command is not a stop\nlog:\n{run.log()[-3000:]}"
    stopped_at = trailing_zero_commands_start(commands)
    assert reached_at - STOP_EARLY_S <= stopped_at <= reached_at + STOP_WITHIN_S, \
        f"stopped {stopped_at - reached_at:+.2f} s from the goal event\nlog:\n{run.log()[-3000:]}"
    state = odometry_to_state(probe.messages("odom")[-1][1])
    assert np.hypot(state[0] - GOAL[0], state[1] - GOAL[1]) < GOAL_TOLERANCE + 0.2
    assert abs(state[4]) < 0.05, "the robot is still moving"


def trailing_zero_commands_start(commands) -> float:
    """Arrival time of the first of the zero commands that end `commands` [(t, Twist)]."""
    start = commands[-1][0]
    for t, m in reversed(commands):
        if not is_zero(m):
            break
        start = t
    return start


def test_ctrl_c_stops_bringup_and_both_nodes(bringup):
    run = bringup
    run.probe.wait_for(lambda: run.probe.messages("cmd_vel"), 90, "the planner to command", run.nodes)
    pids = child_pids(run.log())
    assert len(pids) == 2, run.log()[-2000:]
    os.killpg(run.bringup.pid, signal.SIGINT)
    assert run.bringup.wait(timeout=20) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
