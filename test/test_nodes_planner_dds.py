"""The planner node over real DDS, in its own process: safety stops and live parameters.

The safety stops use a real checkpoint with random weights (see make_random_checkpoint):
they do not depend on what a model learned. The alpha switch uses the shipped model, whose
plans from the default layout's start go through the risky passage at alpha = 1 and turn
to the detour along the top wall at alpha = 0.05.
"""
import math
import subprocess
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from risky_nav import load_layout
from risky_nav.occupancy import occupancy_grid

from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import goal_to_pose, grid_to_occupancy_msg, path_to_xy, state_to_odometry
from test_nodes_helpers import CONFIG, executable, make_random_checkpoint, nodes, probe, ros_env, run_param  # noqa: F401

pytestmark = pytest.mark.timeout(180)

ODOM_TIMEOUT_S = 0.3
# Wide margins, not timing bounds (this 2-core machine is shared): a stop must reach /cmd_vel
# within STOP_WITHIN_S, and from STOP_SLACK_S after the first zero command (an in-flight replan
# may still publish) every command is zero.
STOP_WITHIN_S = 5.0
STOP_SLACK_S = 2.0
# The default layout's task: the straight line from start to goal crosses the risky passage.
START = [1.5, 4.0, 0.0]
GOAL = [10.5, 4.0]
PASSAGE_TOP_Y = 5.1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("model") / "random.safetensors")


def planner_argv(checkpoint, **overrides):
    """The planner with config/planner.yaml; checkpoint None: the shipped default model. A random-weight model's
    plans wander through walls, so with one the collision check is off (it is tested in test_control_controller)."""
    params = {"torch_threads": 1, "candidates": 8, "ddim_steps": 4, "odom_timeout_s": ODOM_TIMEOUT_S,
              "device": "cpu", "costmap_timeout_s": 0.0,  # send_costmap publishes once, latched, as map_server does
              "progress_timeout_s": 0.0,  # the odometry here never moves: the progress check would call it stuck
              **({} if checkpoint is None else {"collision_check": False}), **overrides}
    if checkpoint is not None:
        params["checkpoint"] = str(checkpoint)
    argv = [executable("planner_node"), "--ros-args", "--params-file", str(CONFIG / "planner.yaml")]
    for name, value in params.items():
        argv += ["-p", f"{name}:={value}"]
    return argv


def odometry(x, y, yaw, stamp=None):
    from builtin_interfaces.msg import Time

    return state_to_odometry([x, y, math.sin(yaw), math.cos(yaw), 0.0, 0.0], stamp or Time(), "odom", "base_link")


def send_goal(probe, goal, nodes):
    publisher = probe.node.create_publisher(PoseStamped, "goal_pose", 10)
    probe.wait_for(lambda: publisher.get_subscription_count() > 0, 90, "the planner to subscribe to goal_pose", nodes)
    publisher.publish(goal_to_pose(goal, probe.node.get_clock().now().to_msg(), "odom"))
    return publisher


def send_costmap(probe, nodes):
    """The default layout's map on /costmap, latched (the planner does not drive without one)."""
    grid = occupancy_grid(load_layout("default"))
    publisher = probe.node.create_publisher(OccupancyGrid, topics.COSTMAP, topics.LATCHED)
    publisher.publish(grid_to_occupancy_msg(grid.data, grid.resolution, grid.origin_x, grid.origin_y,
                                            probe.node.get_clock().now().to_msg(), "odom"))
    probe.wait_for(lambda: publisher.get_subscription_count() > 0, 90, "the planner to subscribe to costmap", nodes)
    return publisher


def is_zero(twist):
    return twist.linear.x == 0.0 and twist.angular.z == 0.0


def test_planner_stops_on_silent_or_nan_odometry_and_at_the_goal(nodes, probe, checkpoint):
    planner = nodes.start(planner_argv(checkpoint), "planner")
    probe.record(Twist, "cmd_vel")
    probe.record(Path, "plan")
    mode = {"odom": "valid", "last_valid": 0.0}

    def next_odom():
        msg = odometry(*START)
        if mode["odom"] == "nan":
            msg.pose.pose.position.x = float("nan")
        else:
            mode["last_valid"] = time.monotonic()
        return msg

    _, odom_timer = probe.publish_periodically(Odometry, "odom", next_odom, 0.05)
    send_costmap(probe, nodes)
    send_goal(probe, GOAL, nodes)
    probe.wait_for(lambda: len(probe.messages("plan")) >= 3, 60, "the planner to replan on valid odometry")

    # 1. Silence: stop publishing odometry.
    odom_timer.cancel()
    silent_from = mode["last_valid"]
    stopped_at = first_zero_command(probe, silent_from, nodes, "after odometry stopped")
    time.sleep(STOP_SLACK_S + 1.0)
    late = stopped_at + STOP_SLACK_S
    assert all(is_zero(m) for _, m in probe.messages("cmd_vel", since=late)), "non-zero /cmd_vel while odometry is stale"
    assert not probe.messages("plan", since=late), "the planner kept replanning on stale odometry"
    assert "odometry is stale" in nodes.log(planner)

    # 2. Valid odometry again: replanning resumes.
    resumed_at = time.monotonic()
    odom_timer.reset()
    probe.wait_for(lambda: len(probe.messages("plan", since=resumed_at)) >= 2, 30, "replanning to resume", nodes)

    # 3. NaN odometry (still arriving on time): zero velocity, no replanning.
    mode["odom"] = "nan"
    nan_from = time.monotonic()
    stopped_at = first_zero_command(probe, nan_from, nodes, "after NaN odometry")
    time.sleep(STOP_SLACK_S + 1.0)
    late = stopped_at + STOP_SLACK_S
    assert all(is_zero(m) for _, m in probe.messages("cmd_vel", since=late)), "non-zero /cmd_vel on NaN odometry"
    assert not probe.messages("plan", since=late), "the planner replanned from NaN odometry"
    assert "pose.pose.position.x" in nodes.log(planner)  # the warning names the bad field

    # 4. A goal where the robot already is: one zero command, then no more replanning.
    mode["odom"] = "valid"
    resumed_at = time.monotonic()
    probe.wait_for(lambda: len(probe.messages("plan", since=resumed_at)) >= 2, 30, "replanning to resume", nodes)
    goal_at = time.monotonic()
    send_goal(probe, START[:2], nodes)
    probe.wait_for(lambda: "goal reached" in nodes.log(planner), 10, "the planner to see the goal reached")
    stopped_at = first_zero_command(probe, goal_at, nodes, "at the goal")
    time.sleep(STOP_SLACK_S + 1.0)
    settled = stopped_at + STOP_SLACK_S
    assert is_zero(probe.messages("cmd_vel")[-1][1])
    assert not probe.messages("cmd_vel", since=settled) and not probe.messages("plan", since=settled), \
        "the planner kept commanding after the goal was reached"
    assert planner.poll() is None, "the planner node died"


def first_zero_command(probe, since, nodes, when):
    """Arrival time of the first zero /cmd_vel after `since`; fails after STOP_WITHIN_S."""
    return probe.wait_for(lambda: next((t for t, m in probe.messages("cmd_vel", since=since) if is_zero(m)), None),
                          STOP_WITHIN_S, f"a zero /cmd_vel {when}", nodes)


def plans_by_stamp(probe, since):
    plans = {(m.header.stamp.sec, m.header.stamp.nanosec): path_to_xy(m) for _, m in probe.messages("plan", since)}
    pairs = []
    for _, risk in probe.messages("risk_plan", since):
        key = (risk.header.stamp.sec, risk.header.stamp.nanosec)
        if key in plans:
            pairs.append((risk, plans[key]))
    return pairs


def test_alpha_set_at_run_time_changes_the_plan_and_invalid_values_are_refused(nodes, probe, ros_env):
    # The default layout's specialist (a per-layout model: it needs no /risk_map, which this test does not send;
    # the shipped general model's switch is test_nodes_general_model_alpha_dds), sampling as it was tuned; fixed
    # seed and a robot standing still: every replan at one alpha gives the same plan, so a different plan after
    # the switch is the switch's doing.
    planner = nodes.start(planner_argv(None, alpha=1.0, seed=7, candidates=0, ddim_steps=0)
                          + ["-p", "checkpoint:=default"], "planner")
    probe.record(Path, "plan")
    probe.record(RiskPlan, "risk_plan")
    probe.publish_periodically(Odometry, "odom", lambda: odometry(*START), 0.05)
    send_costmap(probe, nodes)
    send_goal(probe, GOAL, nodes)
    probe.wait_for(lambda: len(plans_by_stamp(probe, 0)) >= 3, 60, "plans at alpha = 1.0")
    neutral = plans_by_stamp(probe, 0)
    assert all(r.alpha == pytest.approx(1.0) for r, _ in neutral)
    for _, plan in neutral[1:]:
        np.testing.assert_allclose(plan, neutral[0][1], atol=1e-5, err_msg="same state and seed gave another plan")

    switch = run_param(ros_env, "set", "/planner", "alpha", "0.05")
    assert switch.returncode == 0, switch.stderr
    switched_at = time.monotonic()
    probe.wait_for(lambda: len([r for r, _ in plans_by_stamp(probe, switched_at) if r.alpha < 0.5]) >= 2, 30,
                   "plans at alpha = 0.05")
    averse = [(r, p) for r, p in plans_by_stamp(probe, switched_at) if r.alpha < 0.5]
    assert averse[-1][0].alpha == pytest.approx(0.05) and averse[-1][0].risk_mode == "averse"
    change = float(np.abs(averse[-1][1] - neutral[0][1]).max())
    assert change > 1e-3, "the chosen plan did not change with alpha"
    # Risk-neutral: straight at the goal into the passage (it spans y 2.9 .. 5.1 from x = 4).
    assert neutral[0][1][:, 1].max() < PASSAGE_TOP_Y and neutral[0][1][-1, 0] > 4.0
    # Very cautious: up towards the corridor along the top wall, away from the passage.
    assert averse[-1][1][:, 1].max() > PASSAGE_TOP_Y + 0.5 and averse[-1][1][-1, 0] < 4.0

    for bad, reason in (("0", "(0, 1]"), ("1.5", "out of range")):
        refused = run_param(ros_env, "set", "/planner", "alpha", bad)
        assert refused.returncode == 1, f"alpha={bad} was not refused: {refused.stdout} {refused.stderr}"
        assert reason in refused.stderr, refused.stderr
    kept = run_param(ros_env, "get", "/planner", "alpha")
    assert kept.returncode == 0 and float(kept.stdout) == pytest.approx(0.05)
    after_refusals = time.monotonic()
    probe.wait_for(lambda: plans_by_stamp(probe, after_refusals), 30, "a plan after the refused values")
    assert all(r.alpha == pytest.approx(0.05) for r, _ in plans_by_stamp(probe, after_refusals))

    mode = run_param(ros_env, "set", "/planner", "risk_mode", "reckless")
    assert mode.returncode == 1 and "averse, seeking" in mode.stderr
    missing = run_param(ros_env, "set", "/planner", "checkpoint", "/nonexistent/model.safetensors")
    assert missing.returncode == 1 and "/nonexistent/model.safetensors" in missing.stderr
    assert planner.poll() is None


@pytest.mark.parametrize("override,expected", [
    ("alpha:=0.0", "alpha must be in (0, 1]"),
    ("checkpoint:=/nonexistent/model.safetensors", "/nonexistent/model.safetensors"),
])
def test_invalid_start_up_parameters_stop_the_node_with_the_reason(ros_env, checkpoint, override, expected):
    argv = planner_argv(checkpoint) + ["-p", override]
    result = subprocess.run(argv, env=ros_env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
