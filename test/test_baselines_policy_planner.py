"""A learned policy behind the shipped controller (baselines/policy_planner.py, the `checked:` settings): its command
runs where the collision check passes it, and the controller's recovery drives where it does not."""
import numpy as np
import pytest
import torch

from rs_diffuser_ros.baselines.policy_planner import PolicyPlanner
from rs_diffuser_ros.control import Controller, ControllerSettings, Grid, StopReason
from rs_diffuser_ros.eval.settings import CheckedPolicySetting, SettingError, parse_setting

GOAL = np.array([1.0, 3.0], dtype=np.float32)  # behind the robot: the policy does not care


class Straight:
    """A policy that always commands full speed straight ahead, whatever it sees: what the check must stop at a wall."""

    def act(self, observations):
        self.seen = np.asarray(observations)
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(observations), 1))


def corridor() -> Grid:
    """6 x 4 m, 0.05 m cells, walls all round."""
    data = np.zeros((80, 120), dtype=np.int8)
    data[0, :] = data[-1, :] = data[:, 0] = data[:, -1] = 100
    return Grid(data, 0.05, 0.0, 0.0)


def step_from(x: float, policy=None):
    torch.set_num_threads(1)
    policy = policy or Straight()
    c = Controller(PolicyPlanner(policy), ControllerSettings(seed=0))
    c.set_goal(GOAL)
    c.on_costmap(corridor(), 0.0)
    c.on_odometry(np.array([x, 2.0, 0.0, 1.0, 0.0, 0.0], np.float32), 0.0)  # at rest, facing +x
    return c.step(0.0), policy


def test_in_the_open_the_policy_s_command_runs_as_it_is():
    command, policy = step_from(2.0)
    assert command.stop is None and (command.v, command.omega) == (1.0, 0.0)
    np.testing.assert_array_equal(policy.seen[0], [2.0, 2.0, 0.0, 1.0, 0.0, 0.0, *GOAL])  # [state, goal]


def test_facing_a_wall_its_command_is_refused_and_the_recovery_drives():
    command, _ = step_from(5.55)  # 0.4 m from the wall: held 0.5 s from rest it ends 0.21 m off, inside 0.2 + 0.02 m
    assert command.stop == StopReason.NO_VALID_CONTROL
    assert command.v < 1.0


def test_checked_names_a_learned_baseline_and_nothing_else():
    s = parse_setting("checked:bc:some/bc.safetensors")
    assert isinstance(s, CheckedPolicySetting) and s.name == "checked:bc:some/bc.safetensors"
    assert s.is_baseline and not s.is_rs_diffuser and s.label == "behaviour cloning, behind the controller's check"
    assert parse_setting("checked:codac").inner.kind == "codac"
    for bad, why in (("checked", "needs a learned baseline"), ("checked:averse:0.1", "takes a learned baseline"),
                     ("checked:checked:bc", "takes a learned baseline")):
        with pytest.raises(SettingError, match=why):
            parse_setting(bad)
