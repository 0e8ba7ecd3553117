"""The recovery's turn towards the way to the goal ends where a step passes (controller.recover).

Found on test map gen1000000 (the H200 verdict at env seed 60018, averse:0.1): the robot stood at a 0.8 m gap
between a thin wall and a block's corner, every plan refused by the collision check, facing 85 degrees. The recovery's
heading (90 degrees, checked there) was within the turn's old 0.1 rad dead band, and from 85 degrees no step passed,
so it stood still until the time limit (358 ticks). Here the same state, closed loop on the shipped general model,
the map generated from its seed (the test split: never trained on).
"""
import dataclasses
import math

import pytest
import torch
from closed_loop import drive, touched
from risky_nav.mapgen import generate_map

from rs_diffuser_ros.control import settings_from_yaml
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.shipped import planner_yaml, resolve_model

MAP_SEED = 1000000
AT_THE_GAP = [3.899, 3.018, math.atan2(0.996, 0.086)]  # where it stood, facing 85 degrees
GOAL = [5.798, 12.894]


@pytest.fixture(scope="module")
def drive_from_the_gap():
    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    settings = dataclasses.replace(settings_from_yaml(planner_yaml()), alpha=0.1)
    ticks = drive(planner, settings, generate_map(MAP_SEED).layout, AT_THE_GAP, GOAL, 40)
    return [t.command for t in ticks], ticks[-1].obs, touched(ticks)


def test_at_the_gap_no_plan_passes_and_the_first_command_turns_towards_the_checked_heading(drive_from_the_gap):
    commands, _, _ = drive_from_the_gap
    first = commands[0]
    assert first.plan is None and first.v == 0.0 and "turning towards the way to the goal" in first.why
    assert first.omega > 0.0  # from 85 towards 90 degrees: anticlockwise


def test_the_robot_leaves_the_gap_without_touching_anything(drive_from_the_gap):
    commands, obs, touches = drive_from_the_gap
    assert touches == 0
    assert math.hypot(obs[0] - AT_THE_GAP[0], obs[1] - AT_THE_GAP[1]) > 0.5  # it stood still before the fix
    assert any(c.v > 0.0 for c in commands[:15])
