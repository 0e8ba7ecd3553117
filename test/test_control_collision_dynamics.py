"""The collision check rolls a command out from the robot's measured velocity under its acceleration limits
(collision.unicycle_rollout with `accel`; ControllerSettings.max_linear_accel / max_angular_accel).

Found on test map gen1000006 (the H200 verdict at env seed 110131, averse:0.1): the robot, turning towards a wall at
1.5-1.9 rad/s, was told to turn away; rolled out as if it took the command at once, that command passed the check,
while the robot needs ~0.9 s at 4 rad/s^2 to reverse its turn and drove on into the wall (6 steps touching).
"""
import dataclasses
import math

import numpy as np
import pytest
import torch
from closed_loop import drive, touched
from risky_nav.env import RiskyNavEnv
from risky_nav.layout import load_layout
from risky_nav.mapgen import generate_map

from rs_diffuser_ros.control import ControllerSettings, settings_from_yaml
from rs_diffuser_ros.control.collision import unicycle_rollout
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.shipped import planner_yaml, resolve_model

LIMITS = (1.5, 4.0)  # the layouts' robot (m/s^2, rad/s^2)


def rollout(state, command, seconds=0.5, accel=LIMITS):
    return unicycle_rollout(torch.tensor([state], dtype=torch.float32), torch.tensor([[command]], dtype=torch.float32),
                            seconds, accel)[0, 0]


def test_from_rest_the_robot_covers_what_its_acceleration_allows_not_what_the_command_says():
    path = rollout([0.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0])
    assert float(path[-1, 0]) == pytest.approx(0.5 * 1.5 * 0.5 ** 2, abs=0.02)  # 0.19 m, not 0.5
    assert float(path[-1, 1]) == pytest.approx(0.0, abs=1e-6)
    instant = rollout([0.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0], accel=None)
    assert float(instant[-1, 0]) == pytest.approx(0.5, abs=1e-5)


def test_a_robot_turning_one_way_keeps_turning_that_way_while_it_reverses():
    # Heading +x at 0.7 m/s, turning left at 1.9 rad/s, told to turn right at 1.8: it keeps swinging left first.
    path = rollout([0.0, 0.0, 0.0, 1.0, 0.7, 1.9], [0.7, -1.8])
    instant = rollout([0.0, 0.0, 0.0, 1.0, 0.7, 1.9], [0.7, -1.8], accel=None)
    assert float(path[:, 1].max()) > 0.08  # left of the start line
    assert float(instant[:, 1].max()) < 1e-6  # the instant unicycle never goes left


def test_a_zero_limit_means_the_command_at_once_on_that_axis():
    state, command = [0.0, 0.0, 0.0, 1.0, 0.2, 1.0], [0.8, -1.0]
    torch.testing.assert_close(rollout(state, command, accel=(0.0, 0.0)), rollout(state, command, accel=None))
    only_turn_limited = rollout(state, command, accel=(0.0, 4.0))
    assert float(only_turn_limited[0, 0]) == pytest.approx(0.8 * 0.05, abs=0.005)  # full speed at once


@pytest.mark.parametrize("state,command", [
    ([2.0, 2.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0]),
    ([2.0, 2.0, math.sin(0.5), math.cos(0.5), 0.7, 1.9], [0.7, -1.8]),
    ([2.0, 2.0, 1.0, 0.0, 0.9, -0.5], [0.15, 1.0]),
])
def test_the_rollout_follows_the_simulated_robot(state, command):
    """risky_nav's robot in the open, started at that velocity and held at the command for 0.5 s (5 steps)."""
    layout = load_layout("default")
    env = RiskyNavEnv(layout)
    try:
        x, y = 3.0, 4.0
        yaw = math.atan2(state[2], state[3])
        env.reset(seed=0, options={"start": [x, y, yaw], "goal": [10.0, 4.0]})
        env._v, env._omega = state[4], state[5]  # the velocity the robot has when the command goes out
        for _ in range(5):
            obs, *_ = env.step(np.array(command, np.float32))
        path = rollout([x, y, *state[2:]], command)
        assert float(np.hypot(*(path[-1].numpy() - obs[:2]))) < 0.01
    finally:
        env.close()


def test_the_settings_are_the_layouts_robot_s():
    settings = settings_from_yaml(planner_yaml())
    robot = load_layout("default").robot
    assert settings.accel == (robot.max_accel, robot.max_alpha)
    assert ControllerSettings().accel == settings.accel


NEAR_THE_WALL = [3.702, 3.063, 0.344, 0.939, 0.711, 1.48]  # gen1000006, 0.39 m below a wall, turning towards it
GOAL = [14.075, 1.528]


@pytest.fixture(scope="module")
def drives():
    """Closed loop from that state (its velocity too) on the shipped general model, CPU, three planner seeds."""
    torch.set_num_threads(1)
    layout = generate_map(1000006).layout
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    settings = dataclasses.replace(settings_from_yaml(planner_yaml()), alpha=0.1)
    start = [*NEAR_THE_WALL[:2], math.atan2(*NEAR_THE_WALL[2:4])]
    runs = [drive(planner, settings, layout, start, GOAL, 15, planner_seed=seed, velocity=NEAR_THE_WALL[4:6])
            for seed in range(3)]
    return [(touched(ticks), float(ticks[-1].obs[0])) for ticks in runs]


def test_turning_towards_a_wall_the_robot_is_stopped_in_time(drives):
    # With the command rolled out as if taken at once, seeds 0 and 1 touched the wall (5 and 6 steps).
    assert [steps for steps, _ in drives] == [0, 0, 0]


def test_and_it_still_gets_on_along_the_wall(drives):
    assert all(x > 4.0 for _, x in drives)  # 0.3 m or more on towards the goal in 1.5 s
