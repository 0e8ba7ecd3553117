"""The general (map-conditioned) model over real DDS on a map it never saw: `bringup` starts the sim on the
shipped default layout (the general model was trained on generated maps only) and the planner with
`checkpoint:=general`; the planner reads /costmap and /risk_map, and the robot reaches the goal without
touching a wall.

Needs the shipped rs_diffuser_ros/models/general.safetensors (a randomly initialised model drives nowhere).
"""
import json

import numpy as np
import pytest

from rs_diffuser_ros.shipped import GENERAL_MODEL, model_path
from test_nodes_bringup_dds import GOAL, bringup_session, events

pytestmark = pytest.mark.timeout(300)

DRIVE_TIMEOUT_S = 150.0


@pytest.fixture
def unseen_map_bringup(tmp_path):
    if not model_path(GENERAL_MODEL).is_file():
        pytest.fail(f"the shipped general model {model_path(GENERAL_MODEL)} is missing")
    # Half real time: on a slow, shared 2-core box the map model's replans (with the collision check's resampling)
    # and the sim's odometry fell behind a real-time loop (odometry 0.66 s stale, a wall touched) in 1 of 3 runs
    # at the commit before as after; what this test checks is where the model drives, not how fast it plans
    # (docs/performance.md). Runs that ended stuck in the top corridor (2 of 7 there; 2 of 9 on 2026-12-01), every
    # plan colliding, led to the controller's recovery step (control/recovery.py). Its first version cut the upper
    # block's corner at the check's radius and touched it in 3 of 20 runs: planned from odometry that had waited
    # for the tick. Planned from the odometry moved on by its age (odom_prediction), 20 of 20 passed, recovery steps
    # in 9 of them. The model's plans hugging walls in that corridor are issue 15's to mend.
    with bringup_session(tmp_path, "default", 0.1, "general", ("--sim-param", "real_time_factor:=0.5")) as run:
        yield run


def test_the_general_model_drives_a_map_it_never_saw_to_the_goal_without_a_collision(unseen_map_bringup):
    run, probe = unseen_map_bringup, unseen_map_bringup.probe
    probe.wait_for(lambda: any(e["event"] in ("goal_reached", "time_limit") for e in events(probe)),
                   DRIVE_TIMEOUT_S, "the episode to end", run.nodes)
    kinds = [e["event"] for e in events(probe)]
    assert "goal_reached" in kinds, f"events: {events(probe)}\nlog:\n{run.log()[-3000:]}"
    reached = next(e for e in events(probe) if e["event"] == "goal_reached")
    assert np.hypot(reached["x"] - GOAL[0], reached["y"] - GOAL[1]) < 0.35
    assert "collision" not in kinds, json.dumps(events(probe))
    assert "map-conditioned" in run.log(), "the planner did not say it plans on the map it receives"
