"""The sim node under bad commands and goals, in this process: a real SimNode (PyBullet world)
whose subscription callbacks get the bad messages; its log is read from stderr (capfd)."""
import math
import random

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from rclpy.parameter import Parameter

from rs_diffuser_ros.nodes.conversions import goal_to_pose
from rs_diffuser_ros.nodes.sim_node import SimNode

START, GOAL = [3.0, 4.0, 0.0], [10.5, 4.0]


@pytest.fixture
def sim():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(120, 230))
    node = SimNode(context=context, parameter_overrides=[
        Parameter("seed", value=1), Parameter("start", value=START), Parameter("goal", value=GOAL)])
    yield node
    node.env.close()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def drive(sim, v, omega, steps):
    twist = Twist()
    twist.linear.x, twist.angular.z = v, omega
    for _ in range(steps):
        sim._on_cmd_vel(twist)
        sim._step()


def test_a_non_finite_command_drives_zero_with_a_warning(sim, capfd):
    drive(sim, 0.8, 0.0, 10)
    assert sim.obs[4] > 0.5  # moving forward
    drive(sim, float("nan"), 0.0, 10)
    assert abs(sim.obs[4]) < 1e-6, "the robot kept moving on a NaN command"
    drive(sim, 0.5, float("inf"), 3)
    assert abs(sim.obs[4]) < 1e-6 and abs(sim.obs[5]) < 1e-6
    log = capfd.readouterr().err
    assert "cmd_vel linear.x / angular.z is not finite (nan, 0.0): driving zero" in log


@pytest.mark.parametrize("goal,why", [([25.0, 4.0], "outside the map"), ([6.0, 1.45], "not free"),
                                      ([float("nan"), 4.0], "finite")])
def test_a_goal_outside_the_map_in_an_obstacle_or_not_finite_is_ignored(sim, capfd, goal, why):
    pose = goal_to_pose([0.0, 0.0], Time(), "odom")
    pose.pose.position.x, pose.pose.position.y = goal
    sim._on_goal(pose)
    np.testing.assert_allclose(sim.env.unwrapped.goal, GOAL)
    log = capfd.readouterr().err
    assert "goal ignored" in log and why in log


def test_a_goal_in_another_frame_is_ignored(sim, capfd):
    sim._on_goal(goal_to_pose([10.5, 2.0], Time(), "map"))
    np.testing.assert_allclose(sim.env.unwrapped.goal, GOAL)
    assert "goal header.frame_id is 'map'" in capfd.readouterr().err
    assert not math.isnan(sim.obs[0])


def test_the_time_limit_counts_from_each_new_goal(sim):
    """A goal set late in a run gets the layout's whole time limit, not what is left of the first one."""
    events = []
    sim._event = lambda kind, **fields: events.append(kind)
    limit = sim.env.unwrapped.max_episode_steps
    drive(sim, 0.0, 0.0, limit - 5)
    sim._on_goal(goal_to_pose([10.5, 2.0], Time(), "odom"))
    assert events == ["new_goal"]
    drive(sim, 0.0, 0.0, limit - 1)
    assert "time_limit" not in events, "the new goal's time limit ran out early"
    drive(sim, 0.0, 0.0, 1)
    assert events[-1] == "time_limit"
