"""An evaluation number measures what ships: the evaluation's path and the planner node's path give the
same command for the same inputs, step by step, over a whole seeded episode on the shipped model.

Evaluation path: eval.policies.ControllerPolicy stepped by eval.lockstep over a RiskyNav env (the
settings from config/planner.yaml, as `python -m rs_diffuser_ros.eval` runs them). Node path: a real
PlannerNode in this process (no DDS traffic needed), fed the same states as Odometry messages,
the layout's costmap as an OccupancyGrid and the goal as a PoseStamped, ticked once per state; its
/cmd_vel is what it hands its publisher. The states come from the evaluation's episode, so both
paths see identical inputs (a closed loop through two copies of the env would only add float
round-off from the message conversions and measure that instead).
"""
import random

import gymnasium
import numpy as np
import pytest
import rclpy
import risky_nav
import torch
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter

from rs_diffuser_ros.control import settings_from_yaml
from rs_diffuser_ros.core import RiskSensitivePlanner
from rs_diffuser_ros.eval.lockstep import run_lockstep
from rs_diffuser_ros.eval.policies import ControllerPolicy, published_grids
from rs_diffuser_ros.nodes.conversions import goal_to_pose, grid_to_occupancy_msg, state_to_odometry
from rs_diffuser_ros.nodes import planner_node
from rs_diffuser_ros.nodes.planner_node import PlannerNode
from rs_diffuser_ros.shipped import model_path

SEED, ALPHA, ENV_SEED = 7, 0.05, 3


class Recording:
    """Wraps a batch policy and keeps every observation it was given and every action it returned."""

    def __init__(self, policy):
        self.policy, self.obs, self.actions = policy, [], []

    def reset(self, slot, obs):
        self.policy.reset(slot, obs)

    def act(self, obs, slots):
        actions = self.policy.act(obs, slots)
        self.obs.append(obs[0].copy())
        self.actions.append(actions[0].copy())
        return actions


@pytest.fixture(scope="module")
def evaluation_episode():
    torch.set_num_threads(1)
    env = gymnasium.make(risky_nav.ENV_ID, layout="default", disable_env_checker=True)
    grid, risk, _ = published_grids(env.unwrapped.layout)
    settings = settings_from_yaml(alpha=ALPHA, seed=SEED)  # the shipped YAML, a fixed noise seed
    planner = RiskSensitivePlanner.from_checkpoint(model_path(), device="cpu")
    assert planner.map_conditioned  # the shipped default: the general model, reading the costmap and the risk layer
    recording = Recording(ControllerPolicy(planner, settings, grid, n_slots=1, risk_grid=risk))
    outcome, = run_lockstep([env], recording, "parity", [(0, ENV_SEED)])
    env.close()
    return recording, grid, risk, outcome


class TickClock:
    """The node's time.monotonic: stands still within a tick, so each odometry arrives at the tick that uses it, as
    in the evaluation (age 0: odom_prediction moves nothing), and moves on one control period between ticks."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


def test_the_node_and_the_evaluation_give_the_same_commands_step_by_step(evaluation_episode, monkeypatch):
    recording, grid, risk, outcome = evaluation_episode
    clock = TickClock()
    monkeypatch.setattr(planner_node, "time", clock)
    assert outcome.success and outcome.length == len(recording.actions) > 50
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(120, 230))
    try:
        # The node's YAML values are its code defaults (test_nodes_params); only alpha and the seed differ.
        node = PlannerNode(context=context, parameter_overrides=[
            Parameter("alpha", value=ALPHA), Parameter("seed", value=SEED), Parameter("device", value="cpu")])
        commands = []
        node.cmd_pub.publish = commands.append
        costmap = grid_to_occupancy_msg(grid.data, grid.resolution, grid.origin_x, grid.origin_y, Time(), "odom")
        node._on_risk_map(grid_to_occupancy_msg(risk.data, risk.resolution, risk.origin_x, risk.origin_y, Time(), "odom"))
        node._on_goal(goal_to_pose(recording.obs[0][6:8], Time(), "odom"))
        for obs in recording.obs:
            node._on_costmap(costmap)  # the sim node republishes it; the evaluation counts it fresh every step
            node._on_odom(state_to_odometry(obs[:6], Time(), "odom", "base_link"))
            node._tick()
            clock.now += 0.1
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    node_actions = np.array([[c.linear.x, c.angular.z] for c in commands])
    assert node_actions.shape == (len(recording.actions), 2)
    # Odometry carries yaw as a quaternion: sin/cos come back with ~1e-7 round-off, nothing more.
    np.testing.assert_allclose(node_actions, np.array(recording.actions), atol=1e-4)
    # The episode exercised more than the plain clip: it slowed down on the final approach.
    speeds = np.abs(node_actions[:, 0])
    assert speeds[-3:].max() < 0.9 * speeds.max()
