"""A robot that must stop while still moving brakes with a turn rate whose stop keeps clear of walls
(recovery.braking_turn), and the collision check can demand that every command leaves such a stop
(collision.stopping_rollout; ControllerSettings.collision_stop_after_s).

Found on test map gen1000034 (the H200 verdict at env seed 141022, averse:0.1): at 0.93 m/s and 0.40 m from a wall no
candidate passed the check; the recovery's turn in place, asked to turn right, braked along a path 0.2 m from the wall
while braking straight on kept 0.225 m, and the robot slid 8 steps into it.
"""
import dataclasses
import math

import numpy as np
import pytest
import torch
from closed_loop import drive, touched
from risky_nav.mapgen import generate_map

from rs_diffuser_ros.control import ControllerSettings, settings_from_yaml
from rs_diffuser_ros.control.collision import ClearanceMap, safe_candidates, stopping_rollout, unicycle_rollout
from rs_diffuser_ros.control.recovery import braking_turn
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.eval.policies import published_grids
from rs_diffuser_ros.shipped import planner_yaml, resolve_model

SETTINGS = ControllerSettings()
RADIUS = SETTINGS.robot_radius_m + SETTINGS.collision_margin_m
# gen1000034 at env seed 141022: x, y, yaw, v, omega as the robot found no candidate, and the turn the recovery asked
SLIDING = (7.611, 11.204, -1.106, 0.933, -0.27)
ASKED = -0.93
GOAL = [9.46, 1.86]


def state(x, y, yaw, v, omega):
    return np.array([x, y, math.sin(yaw), math.cos(yaw), v, omega], np.float32)


@pytest.fixture(scope="module")
def clearance():
    grid, _, _ = published_grids(generate_map(1000034).layout)
    return ClearanceMap(grid, True)


def stop_clearance(clearance, s, omega):
    stop = stopping_rollout(torch.as_tensor(s)[None], torch.tensor([[[0.0, omega]]]), 0.0, SETTINGS.braking_s,
                            SETTINGS.accel)
    return float(clearance.at(stop[0, 0]).min())


def test_the_turn_asked_for_would_slide_into_the_wall_and_the_braking_turn_does_not(clearance):
    s = state(*SLIDING)
    assert stop_clearance(clearance, s, ASKED) < RADIUS
    omega = braking_turn(s, ASKED, clearance, RADIUS, SETTINGS.braking_s, SETTINGS.accel, SETTINGS.max_angular_speed)
    assert omega != ASKED and stop_clearance(clearance, s, omega) >= RADIUS


def test_a_robot_standing_still_turns_as_asked(clearance):
    s = state(*SLIDING[:3], 0.0, 0.0)
    assert braking_turn(s, ASKED, clearance, RADIUS, SETTINGS.braking_s, SETTINGS.accel, 2.0) == ASKED


def test_a_stop_is_the_command_held_then_braking_to_a_stand_under_the_limits():
    start = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 0.0]])  # at 1 m/s along +x
    path = stopping_rollout(start, torch.tensor([[[1.0, 0.0]]]), 0.1, 1.0, (1.5, 4.0))[0, 0]
    # 0.1 m held, then 1 / (2 x 1.5) = 0.333 m of braking (0.309 as risky_nav integrates it: the speed steps down
    # before the step is taken); standing from then on
    assert float(path[-1, 0]) == pytest.approx(0.1 + 0.309, abs=0.005)
    assert float(path[-1, 0]) == pytest.approx(float(path[-3, 0]), abs=1e-6)
    held = unicycle_rollout(start, torch.tensor([[[1.0, 0.0]]]), 0.2, (1.5, 4.0))[0, 0]
    torch.testing.assert_close(path[:2], held[:2])  # the same robot until it brakes


def test_the_check_refuses_a_command_whose_stop_hits_what_the_held_command_clears():
    """A slow-braking robot (0.5 m/s^2: 1 m to a stand from 1 m/s) 0.9 m from a wall: holding 1 m/s for the 0.5 s
    lookahead stays clear, its stop does not."""
    occupancy = np.zeros((40, 60), np.int8)
    occupancy[:, 40:] = 100  # a wall from x = 2.0 m (0.05 m cells)
    grid = type("Grid", (), dict(data=occupancy, resolution=0.05, origin_x=0.0, origin_y=0.0))
    wall = ClearanceMap(grid, True)
    start = torch.tensor([[1.1, 1.0, 0.0, 1.0, 1.0, 0.0]])
    command = torch.tensor([[[1.0, 0.0]]])
    plan = start[:, None, None, :2]
    accel = (0.5, 4.0)
    slow = dataclasses.replace(SETTINGS, max_linear_accel=0.5)
    held_only = safe_candidates(wall, start, plan, command, RADIUS, 0.5, 1.5, 0.2, accel)
    with_stop = safe_candidates(wall, start, plan, command, RADIUS, 0.5, 1.5, 0.2, accel, slow.stop_rollout)
    assert bool(held_only[0, 0]) and not bool(with_stop[0, 0])
    assert dataclasses.replace(slow, collision_stop_after_s=0.0).stop_rollout is None


def test_from_the_sliding_state_the_controller_stops_clear_of_the_wall():
    """Closed loop from that state and velocity on the shipped general model, CPU, three planner seeds."""
    torch.set_num_threads(1)
    layout = generate_map(1000034).layout
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    settings = dataclasses.replace(settings_from_yaml(planner_yaml()), alpha=0.1)
    x, y, yaw, v, omega = SLIDING
    runs = [drive(planner, settings, layout, [x, y, yaw], GOAL, 12, planner_seed=seed, velocity=(v, omega))
            for seed in range(3)]
    assert [touched(ticks) for ticks in runs] == [0, 0, 0]
