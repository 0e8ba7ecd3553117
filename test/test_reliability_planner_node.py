"""The planner node under bad input, bad parameters and faults, in this process (no timing).

A real PlannerNode on a real checkpoint (random weights: nothing here depends on what a
model learned). Inputs go in through the node's own subscription callbacks and each replan
is one call of its timer callback, so the tests decide exactly what the node has seen when
it ticks; /cmd_vel and /plan are recorded as the node hands them to its publishers (they
are still published). The node's log is read from the process's stderr (capfd).

The planning-step fault is injected two ways: a real one, a checkpoint whose weights have
diverged (finite, so it loads, but the plans come out NaN) set through the `checkpoint`
parameter; and a one-off exception from the core (monkeypatched: a transient failure, as a
CUDA out-of-memory would be) to show the node recovers on the very next tick.
"""
import dataclasses
import math
import random
import time

import numpy as np
import pytest
import rclpy
import torch
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter

from risky_nav.layout import load_layout
from risky_nav.occupancy import risk_grid
from rs_diffuser_ros.core import RiskSensitivePlanner
from rs_diffuser_ros.core.checkpoint import save_checkpoint
from rs_diffuser_ros.nodes.conversions import goal_to_pose, grid_to_occupancy_msg, state_to_odometry
from rs_diffuser_ros.nodes.planner_node import PlannerNode
from test_nodes_helpers import make_random_checkpoint

START, GOAL = (1.5, 4.0, 0.0), (10.5, 4.0)
ODOM_TIMEOUT_S = 0.4


NAN_TENSOR = "head.0.weight"  # a weight of the critic config/model.yaml builds (the per-step critic's head)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    good = make_random_checkpoint(folder / "random.safetensors")
    planner = RiskSensitivePlanner.from_checkpoint(good, device="cpu")
    with torch.no_grad():  # what a training run that blew up leaves behind: huge, still finite weights
        for network in planner.networks.values():
            for weight in network.parameters():
                weight.mul_(1e25)
    diverged = save_checkpoint(folder / "diverged.safetensors", planner.config, planner.normalizers,
                               planner.networks)
    garbage = folder / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a model" * 64)
    with torch.no_grad():
        planner.networks["critic"].get_parameter(NAN_TENSOR)[0, 0] = float("nan")
    nan = save_checkpoint(folder / "nan.safetensors", planner.config, planner.normalizers, planner.networks)
    pickled = folder / "pickled.safetensors"
    torch.save({"denoiser.w": torch.zeros(1)}, pickled)
    return {"good": good, "diverged": diverged, "nan": nan, "garbage": garbage, "pickled": pickled}


class Recorder:
    """Wraps a publisher: keeps what the node publishes, and still publishes it."""

    def __init__(self, publisher):
        self.publisher, self.messages = publisher, []

    def publish(self, msg):
        self.messages.append(msg)
        self.publisher.publish(msg)


@pytest.fixture
def node(checkpoints):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(120, 230))
    overrides = {"checkpoint": str(checkpoints["good"]), "candidates": 4, "ddim_steps": 2, "device": "cpu",
                 "torch_threads": 1, "odom_timeout_s": ODOM_TIMEOUT_S, "seed": 0,
                 "collision_check": False}  # a random model's plans wander through walls: tested in test_control_controller
    planner = PlannerNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    planner.cmd_pub = Recorder(planner.cmd_pub)
    planner.path_pub = Recorder(planner.path_pub)
    yield planner
    planner.destroy_node()
    rclpy.try_shutdown(context=context)


def now_stamp(node, offset_s=0.0) -> Time:
    ns = node.get_clock().now().nanoseconds + int(offset_s * 1e9)
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def odometry(node, x=START[0], y=START[1], yaw=START[2], stamp=None):
    return state_to_odometry([x, y, math.sin(yaw), math.cos(yaw), 0.0, 0.0], stamp or now_stamp(node), "odom",
                             "base_link")


def tick(node):
    """One replan tick; returns (cmd_vel messages, plans) it published."""
    cmds, plans = len(node.cmd_pub.messages), len(node.path_pub.messages)
    node._tick()
    return node.cmd_pub.messages[cmds:], node.path_pub.messages[plans:]


def is_zero(twist):
    return twist.linear.x == 0.0 and twist.angular.z == 0.0


def stopped(published):
    cmds, plans = published
    return len(cmds) == 1 and is_zero(cmds[0]) and not plans


def planned(published):
    cmds, plans = published
    return len(cmds) == 1 and len(plans) == 1


def default_map(frame="odom", width=240, height=160, resolution=0.05, origin=(0.0, 0.0)):
    data = np.zeros((height, width), dtype=np.int8)
    data[0, :] = data[-1, :] = data[:, 0] = data[:, -1] = 100
    return grid_to_occupancy_msg(data, resolution, *origin, Time(), frame)


def driving(node):
    """The node with a map, a goal and fresh odometry: a tick replans."""
    node._on_costmap(default_map())
    node._on_goal(goal_to_pose(GOAL, Time(), "odom"))
    node._on_odom(odometry(node))
    assert planned(tick(node))
    return node


def test_the_speed_limit_shrinks_on_the_final_approach(node, monkeypatch):
    """Near the goal the command is capped at max_linear_speed x distance / approach_slowdown_m.

    The random model's own actions are slow, so each real plan's action is replaced by full
    speed ahead (as a trained model gives far from the goal): what is left to bound it is the cap.
    """
    real_plan = node.planner.plan_batch
    monkeypatch.setattr(node.planner, "plan_batch", lambda *a, **k: [dataclasses.replace(
        result, action=np.array([2.0, 0.0], dtype=np.float32)) for result in real_plan(*a, **k)])
    node.set_parameters([Parameter("max_linear_speed", value=1.0), Parameter("approach_slowdown_m", value=0.6),
                         Parameter("min_approach_speed", value=0.1)])
    node._on_costmap(default_map())
    node._on_goal(goal_to_pose(GOAL, Time(), "odom"))
    for distance, limit in ((3.0, 1.0), (0.5, 0.5 / 0.6), (0.31, 0.31 / 0.6)):
        node._on_odom(odometry(node, x=GOAL[0] - distance, y=GOAL[1]))
        cmds, plans = tick(node)
        assert len(cmds) == 1 and len(plans) == 1
        assert cmds[0].linear.x == pytest.approx(limit, rel=1e-4)  # odometry goes through float32
    node.set_parameters([Parameter("approach_slowdown_m", value=0.0)])  # off: the plain clip
    node._on_odom(odometry(node, x=GOAL[0] - 0.31, y=GOAL[1]))
    assert tick(node)[0][0].linear.x == pytest.approx(1.0)


# --- bad inputs ------------------------------------------------------------------------------

def test_out_of_order_and_old_odometry_is_dropped_and_then_stops_the_robot(node, capfd):
    driving(node)
    newest = now_stamp(node)
    node._on_odom(odometry(node, x=2.0, stamp=newest))
    node._on_odom(odometry(node, x=9.0, stamp=now_stamp(node, -0.05)))  # older than the one above
    state, _ = node.controller.watchdog.current(time.monotonic())
    assert state[0] == pytest.approx(2.0), "an out-of-order message replaced a newer one"
    assert "out of order" in capfd.readouterr().err
    # Only messages from far in the past keep arriving: they refresh nothing, the robot stops.
    time.sleep(ODOM_TIMEOUT_S + 0.05)
    node._on_odom(odometry(node, stamp=now_stamp(node, -30.0)))
    assert stopped(tick(node))
    log = capfd.readouterr().err
    assert "far in the past" in log and "odometry is stale" in log
    # Unstamped odometry (stamp 0: a simple publisher, a test) is used as it comes.
    node._on_odom(odometry(node, x=3.0, stamp=Time()))
    assert planned(tick(node))


@pytest.mark.parametrize("field,value,warning", [
    ("pose.pose.position.x", float("nan"), "pose.pose.position.x"),
    ("twist.twist.angular.z", float("inf"), "twist.twist.angular.z"),
    ("pose.pose.orientation.w", 0.5, "unit quaternion"),
])
def test_invalid_odometry_stops_at_once_naming_the_field(node, capfd, field, value, warning):
    driving(node)
    msg = odometry(node)
    target = msg
    *parents, leaf = field.split(".")
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)
    node._on_odom(msg)
    assert stopped(tick(node))
    assert warning in capfd.readouterr().err
    node._on_odom(odometry(node))
    assert planned(tick(node)), "valid odometry did not resume planning"


@pytest.mark.parametrize("bad_map,warning", [
    (lambda: default_map(frame="map"), "header.frame_id is 'map'"),
    (lambda: _with(default_map(), lambda m: setattr(m.info, "width", 200)), "cells, info says 200x160"),
    (lambda: _with(default_map(), lambda m: setattr(m.info, "resolution", float("nan"))), "info.resolution"),
    (lambda: _with(default_map(), lambda m: setattr(m.info.origin.position, "x", float("inf"))),
     "info.origin.position"),
    (lambda: _with(default_map(), lambda m: m.data.__setitem__(5, 127)), "occupancy is -1 or 0..100"),
])
def test_a_malformed_or_foreign_costmap_is_ignored_and_the_previous_one_kept(node, capfd, bad_map, warning):
    driving(node)
    kept = node.controller.grid
    node._on_costmap(bad_map())
    assert node.controller.grid is kept
    assert warning in capfd.readouterr().err
    assert planned(tick(node))


def _with(msg, change):
    change(msg)
    return msg


def risk_map(frame="odom"):
    """The default layout's risk layer as the sim publishes it (hazard 6 in the passage, 0 elsewhere)."""
    risk = risk_grid(load_layout("default"), 0.05)
    return grid_to_occupancy_msg(risk.data, risk.resolution, risk.origin_x, risk.origin_y, Time(), frame)


@pytest.mark.parametrize("bad_map,warning", [
    (lambda: risk_map(frame="map"), "risk map header.frame_id is 'map'"),
    (lambda: _with(risk_map(), lambda m: setattr(m.info, "height", 10)), "risk map data has 38400 cells"),
    (lambda: _with(risk_map(), lambda m: setattr(m.info, "resolution", 0.0)), "risk map info.resolution"),
    (lambda: _with(risk_map(), lambda m: m.data.__setitem__(7, -5)), "risk map data holds values in [-5"),
])
def test_a_malformed_or_foreign_risk_map_is_ignored_and_the_previous_one_kept(node, capfd, bad_map, warning):
    driving(node)
    assert node.controller.risk_map is None  # none yet: the planner drives without one (no model reads it)
    node._on_risk_map(risk_map())
    kept = node.controller.risk_map
    assert kept.data[80, 120] == 6 and kept.data[80, 20] == 0  # (6, 4) in the passage; (1, 4) outside
    node._on_risk_map(bad_map())
    assert node.controller.risk_map is kept
    log = capfd.readouterr().err
    assert warning in log and "risk map ignored, keeping the previous one" in log
    node._on_risk_map(bad_map())
    assert "risk map ignored" not in capfd.readouterr().err, "the warning is not throttled"
    assert planned(tick(node))


def test_a_goal_outside_the_map_stops_the_robot_until_a_reachable_goal_comes(node, capfd):
    driving(node)
    node._on_goal(goal_to_pose((25.0, 4.0), Time(), "odom"))
    for _ in range(3):
        assert stopped(tick(node))
    log = capfd.readouterr().err
    assert log.count("goal outside the map") == 1, "the warning is not throttled (or missing)"
    assert "(25.00, 4.00) is not in [0, 12] x [0, 8]" in log
    node._on_goal(goal_to_pose(GOAL, Time(), "odom"))
    assert planned(tick(node))


def test_a_costmap_of_another_size_that_does_not_cover_the_robot_stops_it(node, capfd):
    driving(node)
    node._on_costmap(default_map(width=20, height=20, resolution=0.05))  # 1 m x 1 m at the origin
    assert stopped(tick(node))
    assert "robot outside the map" in capfd.readouterr().err


def test_goal_in_another_frame_or_not_finite_is_ignored(node, capfd):
    driving(node)
    node._on_goal(goal_to_pose((3.0, 3.0), Time(), "map"))
    bad = goal_to_pose((3.0, 3.0), Time(), "odom")
    bad.pose.position.y = float("nan")
    node._on_goal(bad)
    np.testing.assert_allclose(node.controller.goal, GOAL)
    log = capfd.readouterr().err
    assert "goal header.frame_id is 'map'" in log and "not finite" in log


# --- bad parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,value,reason", [
    ("alpha", "high", "type"),
    ("candidates", 2.5, "type"),
    ("candidates", 5000, "range"),
    ("ddim_steps", 10_000, "range"),
    ("odom_timeout_s", 0.0, "range"),
    ("guidance_scale", -0.5, "[0, 1000] or -1"),
    ("checkpoint", "/nonexistent/model.safetensors", "does not exist"),
])
def test_bad_parameter_values_are_refused_with_a_reason_and_the_old_value_kept(node, name, value, reason):
    old = node.get_parameter(name).value
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful and reason in result.reason.lower() + result.reason, result.reason
    assert node.get_parameter(name).value == old


@pytest.mark.parametrize("which,reason", [("garbage", "not a readable safetensors checkpoint"),
                                          ("pickled", "not a readable safetensors checkpoint"),
                                          ("nan", f"tensor 'critic.{NAN_TENSOR}' holds NaN or inf")])
def test_a_corrupt_or_pickled_checkpoint_is_refused_and_the_running_model_kept(node, checkpoints, which, reason):
    driving(node)
    running = node.planner
    result = node.set_parameters([Parameter("checkpoint", value=str(checkpoints[which]))])[0]
    assert not result.successful and reason in result.reason and str(checkpoints[which]) in result.reason
    assert node.planner is running and node.get_parameter("checkpoint").value == str(checkpoints["good"])
    node._on_odom(odometry(node))
    assert planned(tick(node))


def test_start_up_type_error_names_the_parameter(checkpoints):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(120, 230))
    try:
        with pytest.raises(Exception) as error:
            PlannerNode(context=context, parameter_overrides=[Parameter("checkpoint", value=str(checkpoints["good"])),
                                                              Parameter("alpha", value="high")])
        assert "alpha" in str(error.value)
    finally:
        rclpy.try_shutdown(context=context)


def test_torch_compile_at_start_up_reaches_the_planner_and_every_model_swapped_in(checkpoints):
    """Not planned with here: a compile of the replan takes ~100 s on this CPU (docs/performance.md)."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(120, 230))
    try:
        node = PlannerNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoints["good"])), Parameter("device", value="cpu"),
            Parameter("torch_compile", value=True)])
        first = node.planner
        assert first.compile_backend == "inductor"
        assert node.set_parameters([Parameter("checkpoint", value=str(checkpoints["diverged"]))])[0].successful
        assert node.planner is not first and node.planner.compile_backend == "inductor"
        assert not node.set_parameters([Parameter("torch_compile", value=False)])[0].successful  # start-up only
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


# --- faults in the planning step ---------------------------------------------------------------

def test_a_diverged_model_stops_the_robot_every_tick_and_a_good_one_resumes(node, checkpoints, capfd):
    driving(node)
    result = node.set_parameters([Parameter("checkpoint", value=str(checkpoints["diverged"]))])[0]
    assert result.successful, "a finite (if huge) model file is a valid file"
    for _ in range(3):
        node._on_odom(odometry(node))  # odometry keeps coming: a slow load or tick must not make it the stop's reason
        assert stopped(tick(node))
    log = capfd.readouterr().err
    assert "replan failed, zero velocity" in log and "not finite" in log
    assert log.count("replan failed") == 1, "the error is not throttled"
    assert node.set_parameters([Parameter("checkpoint", value=str(checkpoints["good"]))])[0].successful
    node._on_odom(odometry(node))  # loading took a while: odometry keeps coming, as on a robot
    assert planned(tick(node))


def test_a_one_off_exception_in_the_core_stops_the_robot_and_the_next_tick_plans(node, capfd, monkeypatch):
    driving(node)
    real_plan, calls = node.planner.plan_batch, []

    def plan_failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (a transient failure)")
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(node.planner, "plan_batch", plan_failing_once)
    assert stopped(tick(node))
    assert "replan failed, zero velocity: RuntimeError: CUDA out of memory" in capfd.readouterr().err
    assert planned(tick(node))
    assert len(calls) == 2


# --- costmap safety ------------------------------------------------------------------------------

def test_no_costmap_yet_means_no_driving_and_the_reason_is_published(node, capfd):
    status = Recorder(node.status_pub)
    node.status_pub = status
    node._on_goal(goal_to_pose(GOAL, Time(), "odom"))
    node._on_odom(odometry(node))
    assert stopped(tick(node))
    assert "no costmap received yet" in capfd.readouterr().err
    assert status.messages[-1].data == "no_costmap: no costmap received yet"
    node._on_costmap(default_map())
    assert planned(tick(node))
    assert status.messages[-1].data == "driving"


def test_a_costmap_older_than_costmap_timeout_s_stops_the_robot_until_a_new_one_comes(node, capfd):
    node.set_parameters([Parameter("costmap_timeout_s", value=0.2)])
    driving(node)
    time.sleep(0.3)
    node._on_odom(odometry(node))  # odometry is fresh: only the map has gone quiet
    assert stopped(tick(node))
    assert "costmap is stale" in capfd.readouterr().err
    node._on_costmap(default_map())
    assert planned(tick(node))
    node.set_parameters([Parameter("costmap_timeout_s", value=0.0)])  # 0: a static map never goes stale
    time.sleep(0.3)
    node._on_odom(odometry(node))
    assert planned(tick(node))


def test_a_checkpoint_swap_to_a_model_with_fewer_diffusion_steps_than_ddim_steps_is_refused(node, tmp_path):
    """Every running setting is re-validated against the model being swapped in."""
    few = make_random_checkpoint(tmp_path / "few_steps.safetensors", diffusion_steps=3)
    assert node.set_parameters([Parameter("ddim_steps", value=4)])[0].successful
    running = node.planner
    result = node.set_parameters([Parameter("checkpoint", value=str(few))])[0]
    assert not result.successful and "at most the model's diffusion steps (3), got 4" in result.reason
    assert node.planner is running
    # With settings the new model can run, the same swap goes through.
    assert node.set_parameters([Parameter("ddim_steps", value=2)])[0].successful
    assert node.set_parameters([Parameter("checkpoint", value=str(few))])[0].successful
    assert node.planner.config.model.diffusion_steps == 3
