"""The general (map-conditioned) model over real DDS on a map it never saw: `bringup` starts the sim on the
shipped default layout (the general model was trained on generated maps only) and the planner with
`checkpoint:=general`; the planner reads /costmap and /risk_map, and the robot reaches the goal without
touching a wall.

Needs the shipped rs_diffuser_ros/models/general.safetensors (a randomly initialised model drives nowhere).
"""
import json
import os
import random
import signal
from types import SimpleNamespace

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.shipped import GENERAL_MODEL, model_path
from test_nodes_bringup_dds import child_pids, events
from test_nodes_helpers import NodeProcesses, Probe, executable

pytestmark = pytest.mark.timeout(300)

START, GOAL = [1.5, 4.0, 0.0], [10.5, 4.0]  # default layout, as in test_nodes_bringup_dds
DRIVE_TIMEOUT_S = 150.0


@pytest.fixture
def unseen_map_bringup(tmp_path):
    if not model_path(GENERAL_MODEL).is_file():
        pytest.fail(f"the shipped general model {model_path(GENERAL_MODEL)} is missing")
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(120, 230)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    processes = NodeProcesses(env, tmp_path)
    probe = Probe(int(env["ROS_DOMAIN_ID"]))
    probe.record(String, "sim_events", topics.EVENTS)
    probe.record(Twist, "cmd_vel")
    argv = [executable("bringup"), "--layout", "default", "--alpha", "0.1", "--checkpoint", "general",
            "--sim-param", "seed:=3", "--sim-param", f"start:={START}", "--sim-param", f"goal:={GOAL}",
            "--planner-param", "torch_threads:=1", "--planner-param", "device:=cpu"]
    proc = processes.start(argv, "bringup")
    run = SimpleNamespace(probe=probe, nodes=processes, log=lambda: processes.log(proc),
                          goal=GOAL)
    yield run
    processes.stop_all()
    for pid in child_pids(run.log()):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    probe.close()


def test_the_general_model_drives_a_map_it_never_saw_to_the_goal_without_a_collision(unseen_map_bringup):
    run, probe = unseen_map_bringup, unseen_map_bringup.probe
    probe.wait_for(lambda: any(e["event"] in ("goal_reached", "time_limit") for e in events(probe)),
                   DRIVE_TIMEOUT_S, "the episode to end", run.nodes)
    kinds = [e["event"] for e in events(probe)]
    assert "goal_reached" in kinds, f"events: {events(probe)}\nlog:\n{run.log()[-3000:]}"
    reached = next(e for e in events(probe) if e["event"] == "goal_reached")
    assert np.hypot(reached["x"] - run.goal[0], reached["y"] - run.goal[1]) < 0.35
    assert "collision" not in kinds, json.dumps(events(probe))
    assert "map-conditioned" in run.log(), "the planner did not say it plans on the map it receives"
