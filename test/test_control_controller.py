"""The controller's rules, ROS-free, on simulated time: each stage's stop and its reason, batching, fallback."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from rs_diffuser_ros.control import Controller, ControllerSettings, Grid, StopReason, step_all
from rs_diffuser_ros.control import recovery
from rs_diffuser_ros.control.collision import ClearanceMap, unicycle_rollout
from rs_diffuser_ros.control.command_delay import WINDOW, CommandDelay
from rs_diffuser_ros.control.settings import MODEL_OWN
from rs_diffuser_ros.core import Costmap, RiskSensitivePlanner
from rs_diffuser_ros.core.map_input import PlanningMap

START = np.array([1.5, 4.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)  # [x, y, sin, cos, v, omega]
GOAL = np.array([10.5, 4.0], dtype=np.float32)


@pytest.fixture(scope="module")
def planner():
    torch.set_num_threads(1)
    return RiskSensitivePlanner.from_config(device="cpu", seed=0, candidates=4, ddim_steps=2)


def room(width=240, height=160, resolution=0.05) -> Grid:
    data = np.zeros((height, width), dtype=np.int8)
    data[0, :] = data[-1, :] = data[:, 0] = data[:, -1] = 100
    return Grid(data, resolution, 0.0, 0.0)


ROOM = room()


def ready(planner, t=0.0, **settings) -> Controller:
    """A controller with a goal, a map and fresh odometry at time t. The random model's plans wander
    anywhere, so the collision check is off unless a test turns it on (its tests craft the plans)."""
    c = Controller(planner, ControllerSettings(**{"seed": 0, "collision_check": False, **settings}))
    c.set_goal(GOAL)
    c.on_costmap(ROOM, t)
    c.on_odometry(START, t)
    return c


def test_a_ready_controller_plans_within_the_limits(planner):
    command = ready(planner, max_linear_speed=0.05, max_angular_speed=0.01).step(0.0)
    assert command.stop is None and command.plan is not None
    assert abs(command.v) <= 0.05 and abs(command.omega) <= 0.01
    np.testing.assert_array_equal(command.plan.plan[0], START)


def test_the_robot_is_planned_from_where_its_odometry_says_it_is_now(planner):
    """odom_prediction: odometry that arrived 0.2 s before the tick, of a robot driving at 1 m/s along x, is moved on
    0.2 m; a straight drive and an arc give the unicycle's exact end; age 0 (the evaluation) and the setting off keep
    the message as it is."""
    moving = START.copy()
    moving[4] = 1.0
    c = ready(planner, odom_timeout_s=2.0)
    c.on_odometry(moving, 1.0)
    planned_from = c.step(1.2).plan.plan[0]
    np.testing.assert_allclose(planned_from[:2], moving[:2] + [0.2, 0.0], atol=1e-5)
    np.testing.assert_allclose(planned_from[2:], moving[2:], atol=1e-6)
    turning = moving.copy()
    turning[5] = 1.0  # 1 m/s at 1 rad/s: the unit circle about (x, y + 1), a quarter turn in pi / 2 s
    c.on_odometry(turning, 1.0)
    quarter = c.step(1.0 + np.pi / 2).plan.plan[0]
    np.testing.assert_allclose(quarter[:4], [*(turning[:2] + [1.0, 1.0]), 1.0, 0.0], atol=1e-5)
    c.on_odometry(moving, 3.0)
    np.testing.assert_array_equal(c.step(3.0).plan.plan[0], moving)
    off = ready(planner, odom_prediction=False)
    off.on_odometry(moving, 1.0)
    np.testing.assert_array_equal(off.step(1.2).plan.plan[0], moving)


def test_no_goal_is_idle(planner):
    c = ready(planner)
    c.set_goal(None)
    command = c.step(0.0)
    assert (command.stop, command.v, command.omega, command.plan) == (StopReason.NO_GOAL, 0.0, 0.0, None)


@pytest.mark.parametrize("what,reason,why", [
    ("no odometry", StopReason.ODOMETRY, "no odometry received yet"),
    ("stale odometry", StopReason.ODOMETRY, "odometry is stale"),
    ("invalid odometry", StopReason.ODOMETRY, "last odometry was invalid: NaN in x"),
    ("no costmap", StopReason.NO_COSTMAP, "no costmap received yet"),
    ("stale costmap", StopReason.COSTMAP_STALE, "costmap is stale: last one 6.00 s ago (costmap_timeout_s = 5)"),
    ("robot off the map", StopReason.OUTSIDE_MAP, "robot outside the map: (20.00, 4.00) is not in [0, 12] x [0, 8]"),
    ("goal off the map", StopReason.OUTSIDE_MAP, "goal outside the map: (10.50, -1.00)"),
])
def test_each_input_problem_stops_the_robot_with_its_reason(planner, what, reason, why):
    c = Controller(planner, ControllerSettings(seed=0, odom_timeout_s=0.5, costmap_timeout_s=5.0,
                                               collision_check=False))
    c.set_goal(GOAL if what != "goal off the map" else (10.5, -1.0))
    now = 6.0
    if what != "no costmap":
        c.on_costmap(room(), 0.0 if what == "stale costmap" else now)
    state = START.copy()
    if what == "robot off the map":
        state[0] = 20.0
    if what == "invalid odometry":
        c.on_invalid_odometry("NaN in x", now)
    elif what != "no odometry":
        c.on_odometry(state, now - 1.0 if what == "stale odometry" else now)
    command = c.step(now)
    assert (command.stop, command.v, command.omega, command.plan) == (reason, 0.0, 0.0, None)
    assert why in command.why


def test_costmap_timeout_zero_means_a_static_map(planner):
    c = ready(planner, costmap_timeout_s=0.0)
    c.on_odometry(START, 1000.0)
    assert c.step(1000.0).stop is None


def test_goal_reached_stops_once_then_idles_until_a_new_goal(planner):
    c = ready(planner, goal_tolerance_m=0.3)
    near = START.copy()
    near[:2] = GOAL - [0.2, 0.0]
    c.on_odometry(near, 0.1)
    first = c.step(0.1)
    assert first.stop is StopReason.GOAL_REACHED and "0.20 m <= 0.3 m" in first.why
    assert c.step(0.1).stop is StopReason.NO_GOAL
    c.set_goal(GOAL + [0.0, 2.0])
    assert c.step(0.1).stop is None


def test_the_goal_counts_as_reached_where_the_odometry_measured_the_robot_not_where_it_was_predicted(planner):
    """A robot 0.35 m short at 1 m/s, its odometry 0.2 s old, is predicted 0.15 m short: it plans from there, but it
    is not told it has arrived (braking, it might stop outside the goal for good); at 0.25 m measured it has."""
    c = ready(planner, goal_tolerance_m=0.3, odom_timeout_s=2.0)
    short = START.copy()
    short[:2], short[4] = GOAL - [0.35, 0.0], 1.0
    c.on_odometry(short, 1.0)
    command = c.step(1.2)
    assert command.stop is None
    np.testing.assert_allclose(command.plan.plan[0][:2], GOAL - [0.15, 0.0], atol=1e-5)
    short[:2] = GOAL - [0.25, 0.0]
    c.on_odometry(short, 2.0)
    assert c.step(2.2).stop is StopReason.GOAL_REACHED


def test_the_delay_is_the_median_of_a_full_window_capped():
    delay = CommandDelay()
    for _ in range(WINDOW - 1):
        delay.record(0.05)
    assert delay.estimate(limit_s=1.0) == 0.0  # not yet a full window: nothing assumed
    delay.record(0.05)
    assert delay.estimate(limit_s=1.0) == pytest.approx(0.05)
    for seconds in (4.0, 3.0, float("nan"), -1.0):  # two slow ticks (a compiling call) and two bad readings
        delay.record(seconds)
    assert delay.estimate(limit_s=1.0) == pytest.approx(0.05)
    for _ in range(WINDOW):
        delay.record(2.0)
    assert delay.estimate(limit_s=0.5) == 0.5


def test_a_robot_is_planned_from_where_it_will_be_when_the_command_goes_out(planner):
    """At 1 m/s along x, odometry 0.2 s old and ticks that take 0.1 s to plan: 0.3 m on. The goal check still reads
    the odometry as measured."""
    c = ready(planner, odom_timeout_s=2.0)
    moving = START.copy()
    moving[4] = 1.0
    for _ in range(WINDOW):
        c.on_tick_duration(0.1)
    c.on_odometry(moving, 1.0)
    np.testing.assert_allclose(c.step(1.2).plan.plan[0][:2], moving[:2] + [0.3, 0.0], atol=1e-5)
    off = ready(planner, odom_prediction=False)
    for _ in range(WINDOW):
        off.on_tick_duration(0.1)
    off.on_odometry(moving, 1.0)
    np.testing.assert_array_equal(off.step(1.2).plan.plan[0], moving)
    near = moving.copy()
    near[:2] = GOAL - [0.4, 0.0]  # 0.4 m out, predicted 0.1 m: not arrived
    c.on_odometry(near, 2.0)
    assert c.step(2.2).stop is None


def test_approach_slowdown_caps_the_speed_near_the_goal(planner, monkeypatch):
    c = ready(planner, max_linear_speed=1.0, approach_slowdown_m=0.6, min_approach_speed=0.1)
    real = planner.plan_batch
    monkeypatch.setattr(planner, "plan_batch", lambda *a, **k: [
        dataclasses.replace(r, action=np.array([2.0, -9.0], np.float32)) for r in real(*a, **k)])
    near = START.copy()
    near[:2] = GOAL - [0.5, 0.0]
    c.on_odometry(near, 0.1)
    command = c.step(0.1)
    assert command.v == pytest.approx(0.5 / 0.6, rel=1e-5) and command.omega == -2.0


def test_a_failed_or_non_finite_plan_stops_and_the_next_tick_plans(planner, monkeypatch):
    c = ready(planner)
    real, calls = planner.plan_batch, []

    def faulty(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        results = real(*args, **kwargs)
        if len(calls) == 2:
            return [dataclasses.replace(r, action=np.array([np.nan, 0.0], np.float32)) for r in results]
        return results

    monkeypatch.setattr(planner, "plan_batch", faulty)
    first, second, third = c.step(0.0), c.step(0.0), c.step(0.0)
    assert first.stop is StopReason.PLAN_FAILED and first.why == "RuntimeError: CUDA out of memory"
    assert second.stop is StopReason.PLAN_FAILED and "not finite" in second.why and second.plan is None
    assert third.stop is None


def test_robots_on_one_map_share_one_batched_plan_call(planner, monkeypatch):
    controllers = [ready(planner) for _ in range(3)]
    controllers[1].set_goal(None)  # idle: not planned for
    real, batches = planner.plan_batch, []
    monkeypatch.setattr(planner, "plan_batch", lambda states, *a, **k: batches.append(len(states)) or real(states, *a, **k))
    commands = step_all(controllers, 0.0)
    assert batches == [2]
    assert [c.stop for c in commands] == [None, StopReason.NO_GOAL, None]


def test_what_the_maps_give_is_derived_once_per_tick_for_robots_sharing_them(planner, monkeypatch):
    """step_all asks plan_maps once per (planner, settings, costmap, risk layer) a tick, not once per robot; equal
    settings in distinct objects still share one plan call; a map that cannot be used stops only its robots."""
    misfit = room()  # another map, whose maps fail to build
    misfit.data[10, 10] = 100
    controllers = [ready(planner) for _ in range(3)]
    controllers[1].settings = controllers[2].settings = controllers[0].settings  # one settings object for three
    controllers.append(ready(planner))  # equal settings, another object
    controllers += [ready(planner) for _ in range(2)]
    controllers[5].settings = controllers[4].settings
    for c in controllers[4:]:
        c.on_costmap(misfit, 0.0)
    real_maps, asked = Controller.plan_maps, []

    def plan_maps(self):
        asked.append(self)
        if self.grid is misfit:
            raise ValueError("risk map does not fit the costmap")
        return real_maps(self)

    monkeypatch.setattr(Controller, "plan_maps", plan_maps)
    real, batches = planner.plan_batch, []
    monkeypatch.setattr(planner, "plan_batch", lambda states, *a, **k: batches.append(len(states)) or real(states, *a, **k))
    commands = step_all(controllers, 0.0)
    assert asked == [controllers[0], controllers[3], controllers[4]]
    assert batches == [4]
    assert [c.stop for c in commands] == [None] * 4 + [StopReason.PLAN_FAILED] * 2
    assert commands[4].why == commands[5].why == "ValueError: risk map does not fit the costmap"
    for c, command in zip(controllers, commands):  # each robot alone stops (or not) the same way
        alone = c.step(0.0)
        assert (alone.stop, alone.why) == (command.stop, command.why)


def test_the_sampling_settings_reach_the_planner_and_the_models_own_back_the_sentinels(planner):
    own = dict(planner_candidates=planner.own_planner_config.candidates)
    c = ready(planner, candidates=3)
    assert c.step(0.0).plan.candidates.shape[0] == 3
    c.set_settings(dataclasses.replace(c.settings, candidates=0))  # 0: the model's own
    assert c.step(0.0).plan.candidates.shape[0] == c.model_sampling["candidates"] == own["planner_candidates"]


def test_a_controller_made_after_another_reconfigured_the_planner_gets_the_models_own_sampling(planner):
    # An evaluation's settings share one planner and make fresh controllers every episode: after an unguided
    # episode (1 candidate, no guidance) an averse controller must not take those for the model's own.
    own = {name: getattr(planner.own_planner_config, name) for name in MODEL_OWN}
    c = ready(planner, candidates=3, guidance_scale=0.0)
    c.step(0.0)
    assert planner.config.planner.candidates == 3 != own["candidates"]
    later = ready(planner)
    assert later.model_sampling == own
    assert later.step(0.0).plan.candidates.shape[0] == own["candidates"] == 4


def test_unknown_cells_count_as_obstacles_unless_told_otherwise():
    data = np.zeros((10, 10), dtype=np.int8)
    data[5, 5] = -1
    assert Costmap.from_occupancy(data, 0.1, 0, 0, inflation_radius=0.0).cost[5, 5] == 1.0
    assert Costmap.from_occupancy(data, 0.1, 0, 0, inflation_radius=0.0, unknown_is_obstacle=False).cost[5, 5] == 0.0


def test_the_controller_plans_with_unknown_cells_as_its_settings_say(planner, monkeypatch):
    grid = room()
    grid.data[60:100, 100:140] = -1
    seen = []
    real = planner.plan_batch
    monkeypatch.setattr(planner, "plan_batch", lambda *a, **k: seen.append(a[4]) or real(*a, **k))
    for unknown_is_obstacle in (True, False):
        c = ready(planner, unknown_is_obstacle=unknown_is_obstacle)
        c.on_costmap(grid, 0.0)
        c.step(0.0)
    assert seen[0].cost[80, 120] == 1.0 and seen[1].cost[80, 120] == 0.0


# --- the hard collision check ------------------------------------------------------------------

WALL = room()
WALL.data[:, 100:104] = 100  # a wall across the room at x = 5.0 .. 5.2 m (no gap)
SAFE_SETTINGS = dict(collision_check=True, robot_radius_m=0.2, collision_margin_m=0.05, collision_lookahead_s=0.5,
                     max_linear_speed=1.0, approach_slowdown_m=0.0)


def crafted(planner, monkeypatch, plans_for_call):
    """plan_batch returns, per call, candidates whose xy paths are given (straight lines), best score first."""
    real, calls = planner.plan_batch, []

    def fake(states, goals, *args, candidates=None, admissible=None, **kwargs):
        calls.append(candidates)
        results = real(states, goals, *args, candidates=len(plans_for_call[len(calls) - 1]), **kwargs)
        out = []
        for state, result in zip(states, results):
            paths = plans_for_call[len(calls) - 1]
            k, h = len(paths), result.candidates.shape[1]
            cands = np.repeat(state[None, None], h, 1).repeat(k, 0).astype(np.float32)
            actions = np.zeros((k, 2), np.float32)
            for j, (dx, dy, *v) in enumerate(paths):
                t = np.linspace(0, 1, h)[:, None]
                cands[j, :, :2] = state[:2] + t * np.array([dx, dy])
                # The robot faces +x: forward speed along x, unless the path gives its own first action's speed
                # (and turn rate).
                actions[j] = [v[0] if v else dx / (0.1 * (h - 1)), v[1] if len(v) > 1 else 0.0]
            allowed, pick = None, 0  # scores fall with the index: candidate 0 scores best
            if admissible is not None:  # as plan_batch applies it: the best-scoring admissible candidate
                allowed = admissible(torch.as_tensor(cands)[None], torch.as_tensor(actions)[None])[0].numpy()
                pick = int(np.argmax(allowed)) if allowed.any() else 0
            out.append(dataclasses.replace(result, candidates=cands, candidate_actions=actions,
                                           scores=-np.arange(k, dtype=np.float32), chosen_index=pick, best_scoring=0,
                                           plan=cands[pick], action=actions[pick], admissible=allowed))
        return out

    monkeypatch.setattr(planner, "plan_batch", fake)
    return calls


def near_wall(planner, **settings):
    c = Controller(planner, ControllerSettings(seed=0, **{**SAFE_SETTINGS, **settings}))
    c.set_goal(GOAL)
    c.on_costmap(WALL, 0.0)
    state = START.copy()
    state[0] = 4.2  # facing +x, 0.8 m before the wall
    c.on_odometry(state, 0.0)
    return c


def test_a_candidate_through_a_wall_is_never_executed(planner, monkeypatch):
    # Best-scored candidate drives through the wall; the second goes along it (safe).
    crafted(planner, monkeypatch, [[(2.0, 0.0), (0.0, 1.0)]])
    command = near_wall(planner).step(0.0)
    assert command.stop is None and command.plan.chosen_index == 1 and command.events == ("pick_collided",)
    np.testing.assert_allclose(command.plan.plan[-1, :2], [4.2, 5.0], atol=1e-5)


def test_a_plan_that_stops_short_of_the_wall_but_whose_command_would_not_is_ruled_out(planner, monkeypatch):
    # The plan creeps 0.2 m towards the wall and stays clear of it, but its first action, 1 m/s held for the
    # lookahead (0.5 s), would carry the robot (already at 1 m/s) from 0.6 m away into the wall.
    calls = crafted(planner, monkeypatch, [[(0.2, 0.0, 1.0), (0.0, 0.3)]])
    c = near_wall(planner)
    c.watchdog.accept(np.array([4.4, 4.0, 0, 1, 1.0, 0], np.float32), 0.0)
    command = c.step(0.0)
    assert command.plan.chosen_index == 1 and len(calls) == 1


def test_all_candidates_colliding_resamples_then_falls_back_with_its_reason(planner, monkeypatch):
    k = planner.config.planner.candidates
    calls = crafted(planner, monkeypatch, [[(2.0, 0.0), (1.5, 0.2)] * (k // 2), [(2.0, 0.0)] * (4 * k)])
    command = near_wall(planner, collision_resample_factor=4).step(0.0)
    assert calls == [None, 4 * k]  # the second plan asked for 4x the configured candidates
    assert command.stop is StopReason.NO_VALID_CONTROL and command.v == 0.0 and command.plan is None
    assert f"all {4 * k} candidates collide; turning towards free space" in command.why
    assert command.omega != 0.0  # facing the wall: it turns away


WALL_WITH_GAP = room()
WALL_WITH_GAP.data[:, 100:104] = 100  # the wall at x = 5.0 .. 5.2 m ...
WALL_WITH_GAP.data[100:140, 100:104] = 0  # ... with a 2 m gap at y = 5.0 .. 7.0 m


def test_with_every_candidate_colliding_the_robot_takes_a_slow_step_instead_of_turning_in_place(planner, monkeypatch):
    # Every candidate drives into the wall, resampled or not. The goal lies beyond it, reachable through the gap
    # above: the robot takes a slow step (where the closed wall of the test above left it turning in place).
    k = planner.config.planner.candidates
    crafted(planner, monkeypatch, [[(2.0, 0.0)] * k, [(2.0, 0.0)] * (4 * k)])
    c = near_wall(planner, collision_resample_factor=4)
    c.on_costmap(WALL_WITH_GAP, 0.0)
    command = c.step(0.0)
    assert command.stop is StopReason.NO_VALID_CONTROL and command.plan is None
    assert "recovering: a checked slow step towards the goal" in command.why
    assert 0.0 < command.v <= max(recovery.SPEEDS) + 1e-6


def test_a_risk_layer_the_recovery_cannot_read_leaves_the_turn_in_place(planner, monkeypatch):
    # A per-map model ignores the risk layer, so one on another grid reaches the recovery (which reads it) first.
    k = planner.config.planner.candidates
    crafted(planner, monkeypatch, [[(2.0, 0.0)] * k, [(2.0, 0.0)] * (4 * k)])
    c = near_wall(planner, collision_resample_factor=4)
    c.on_costmap(WALL_WITH_GAP, 0.0)
    c.on_risk_map(Grid(np.zeros((10, 10), np.int8), 0.05, 0.0, 0.0), 0.0)
    command = c.step(0.0)
    assert command.stop is StopReason.NO_VALID_CONTROL and command.v == 0.0
    assert "turning towards free space" in command.why


def test_the_recovery_step_keeps_the_collision_check_and_makes_progress_along_free_space():
    clearance = ClearanceMap(WALL_WITH_GAP, True)
    planning_map = PlanningMap.from_grids(WALL_WITH_GAP)
    radius = 0.25
    # Facing the wall 0.35 m before it: the fastest step straight on would end 0.2 m from it, within the radius.
    state = np.array([4.65, 4.0, 0.0, 1.0, 0.0, 0.0], np.float32)
    v, omega = recovery.recovery_step(state, GOAL, clearance, planning_map, radius, 0.5, 1.0, 2.0)
    assert (v, omega) != (max(recovery.SPEEDS), 0.0)
    path = unicycle_rollout(torch.as_tensor(state[None]), torch.tensor([[[v, omega]]]), 0.5)[0, 0]
    # The step it chose keeps its clearance over the whole lookahead.
    assert clearance.at(path).min() >= radius
    field = planning_map.distance_fields(torch.as_tensor(GOAL[None]))[0, 1]
    before = recovery.field_at(field, planning_map, torch.as_tensor(state[:2]))
    assert recovery.field_at(field, planning_map, path[-1]) <= before - recovery.MIN_PROGRESS_M
    # The goal behind a wall with no gap: no step brings it closer, so no step is taken.
    assert recovery.recovery_step(state, GOAL, ClearanceMap(WALL, True), PlanningMap.from_grids(WALL), radius,
                                  0.5, 1.0, 2.0) is None
    # A robot told to stand still takes no step either, nor one facing the wall too close to move at all.
    assert recovery.recovery_step(state, GOAL, clearance, planning_map, radius, 0.5, 0.0, 2.0) is None
    touching = np.array([4.78, 4.0, 0.0, 1.0, 0.0, 0.0], np.float32)  # 0.22 m from the wall, inside the radius
    assert recovery.recovery_step(touching, GOAL, clearance, planning_map, radius, 0.5, 1.0, 2.0) is None


def test_where_no_step_forward_makes_progress_the_recovery_finds_the_heading_that_does():
    clearance, planning_map, radius = ClearanceMap(WALL_WITH_GAP, True), PlanningMap.from_grids(WALL_WITH_GAP), 0.25
    # Beside the wall, facing away from the gap and the goal: every forward step loses ground along free space.
    facing_west = np.array([4.65, 4.0, 0.0, -1.0, 0.0, 0.0], np.float32)
    assert recovery.recovery_step(facing_west, GOAL, clearance, planning_map, radius, 0.5, 1.0, 2.0) is None
    heading = recovery.recovery_heading(facing_west, GOAL, clearance, planning_map, radius, 0.5)
    assert 0.0 < heading < math.pi / 2  # north-east, towards the gap at y = 5 .. 7 m
    turned = facing_west.copy()
    turned[2:4] = math.sin(heading), math.cos(heading)
    assert recovery.recovery_step(turned, GOAL, clearance, planning_map, radius, 0.5, 1.0, 2.0) is not None
    # The goal behind a wall with no gap: no heading helps, so there is none.
    assert recovery.recovery_heading(facing_west, GOAL, ClearanceMap(WALL, True), PlanningMap.from_grids(WALL),
                                     radius, 0.5) is None


def test_with_every_candidate_colliding_and_no_step_forward_the_robot_turns_towards_the_way_to_the_goal(
        planner, monkeypatch):
    # Facing west into open room, the freest direction is straight ahead: turning "towards free space" would leave
    # the robot standing still, as it stood for 45 s in a risky region on val map gen0009008.
    k = planner.config.planner.candidates
    crafted(planner, monkeypatch, [[(2.0, 0.0)] * k, [(2.0, 0.0)] * (4 * k)])
    c = near_wall(planner, collision_resample_factor=4)
    c.on_costmap(WALL_WITH_GAP, 0.0)
    c.watchdog.accept(np.array([4.65, 4.0, 0.0, -1.0, 0.0, 0.0], np.float32), 0.0)
    command = c.step(0.0)
    assert command.stop is StopReason.NO_VALID_CONTROL and command.v == 0.0
    assert "turning towards the way to the goal" in command.why
    assert command.omega < 0.0  # from west to north-east: clockwise is the short way


def test_resampling_can_find_a_safe_candidate(planner, monkeypatch):
    crafted(planner, monkeypatch, [[(2.0, 0.0)], [(2.0, 0.0), (0.0, -1.0)]])
    command = near_wall(planner, collision_resample_factor=2).step(0.0)
    assert command.stop is None and command.events == ("resampled", "pick_collided")


def test_with_the_check_off_the_best_score_runs_even_through_a_wall(planner, monkeypatch):
    crafted(planner, monkeypatch, [[(2.0, 0.0), (0.0, 1.0)]])
    command = near_wall(planner, collision_check=False).step(0.0)
    assert command.stop is None and command.plan.chosen_index == 0


def test_a_robot_already_touching_a_wall_may_move_away_but_not_closer(planner, monkeypatch):
    crafted(planner, monkeypatch, [[(0.3, 0.0), (-1.0, 0.0)]])
    c = near_wall(planner)
    c.watchdog.accept(np.array([4.85, 4.0, 0, 1, 0, 0], np.float32), 0.0)  # 0.15 m from the wall
    assert c.step(0.0).plan.chosen_index == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run by tools/gpu_eval.sh's session)")
def test_the_collision_check_gives_the_same_answer_on_the_gpu():
    from rs_diffuser_ros.control.collision import ClearanceMap, safe_candidates

    rng = np.random.default_rng(0)
    states = np.tile(START, (64, 1))
    states[:, :2] = rng.uniform([0.5, 0.5], [11.5, 7.5], (64, 2))
    plans = states[:, None, None, :2] + np.cumsum(rng.normal(0, 0.08, (64, 16, 32, 2)), 2)
    commands = rng.uniform([-1, -2], [1, 2], (64, 16, 2))
    masks = [safe_candidates(ClearanceMap(WALL, True, device), *(torch.as_tensor(a, dtype=torch.float32, device=device)
                                                                for a in (states, plans, commands)), 0.25, 0.5, 3.1)
             .cpu().numpy() for device in ("cpu", "cuda")]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert 0.1 < masks[0].mean() < 0.9  # both safe and unsafe candidates were there to tell apart


def test_only_the_first_collision_horizon_s_of_a_plan_is_checked(planner, monkeypatch):
    """The plans' tails are intentions replanned ten times a second: a hard check of all 3.1 s turned the
    shipped model's corner-cutting detours into short cuts through the risky passage (docs/method_choices.md)."""
    # 2.0 m towards the wall 0.8 m away over the plan's 3.1 s: it reaches the wall after about 1.1 s.
    for horizon, admitted in ((0.5, True), (1.5, False)):
        crafted(planner, monkeypatch, [[(2.0, 0.0, 0.1), (0.0, 1.0)]])
        command = near_wall(planner, collision_horizon_s=horizon).step(0.0)
        assert (command.plan.chosen_index == 0) == admitted, horizon
        monkeypatch.undo()


def test_the_checked_part_of_a_plan_is_counted_in_seconds_whatever_the_plan_stride():
    """A plan of a plan_stride-2 model holds a state every 0.2 s: collision_horizon_s = 1.5 s is its first 8 steps."""
    from risky_nav.env import CONTROL_PERIOD
    from rs_diffuser_ros.control.collision import DATA_PERIOD_S, ClearanceMap, plan_step_s, safe_candidates

    assert DATA_PERIOD_S == CONTROL_PERIOD and plan_step_s(2) == pytest.approx(0.2)
    state = np.array([[2.0, 4.0, 0.0, 1.0, 0.0, 0.0]], np.float32)
    plan = np.repeat(state[:, None, None, :2], 32, 2)  # [1, 1, 32, 2] standing still ...
    plan[0, 0, 10:, 0] = 4.9  # ... then in the wall (x = 5) from state 10: 1.0 s at stride 1, 2.0 s at stride 2
    safe = {stride: bool(safe_candidates(ClearanceMap(WALL, True), *(torch.as_tensor(a) for a in (
        state, plan, np.zeros((1, 1, 2), np.float32))), 0.25, 0.5, 1.5, plan_step_s(stride))[0, 0])
        for stride in (1, 2)}
    assert safe == {1: False, 2: True}


def test_carry_plan_of_a_strided_model_moves_its_plan_on_by_one_control_period(planner, monkeypatch):
    """A tick is half a plan step of a plan_stride-2 model: the carried plan lies halfway between its states."""
    c = ready(planner, carry_plan=True)
    monkeypatch.setattr(planner.config.model, "plan_stride", 2)
    executed = np.arange(32 * 6, dtype=np.float32).reshape(32, 6)
    c.last_plan = executed
    state = executed[0] + np.float32(0.01)
    carried = c.carried_plan(state)
    np.testing.assert_array_equal(carried[0], state)
    np.testing.assert_allclose(carried[1:-1], 0.5 * (executed[1:-1] + executed[2:]))
    np.testing.assert_array_equal(carried[-1], executed[-1])  # the last state is held


def test_carry_plan_offers_last_ticks_executed_plan_one_step_on_and_forgets_it_with_the_goal(planner, monkeypatch):
    c = ready(planner, carry_plan=True)
    real, seen = planner.plan_batch, []
    monkeypatch.setattr(planner, "plan_batch", lambda *a, **k: seen.append(k.get("carried")) or real(*a, **k))
    first = c.step(0.0)
    assert first.stop is None and seen[-1] is None  # nothing executed yet: nothing carried
    executed = first.plan.plan
    state = executed[1] + np.float32(0.01)  # the robot moved about one plan step
    c.on_odometry(state, 0.1)
    c.step(0.1)
    carried = seen[-1][0]
    np.testing.assert_array_equal(carried[0], state)
    np.testing.assert_array_equal(carried[1:-1], executed[2:])
    np.testing.assert_array_equal(carried[-1], executed[-1])  # the last state is held
    c.set_goal(c.goal + 0.5)
    c.step(0.1)
    assert seen[-1] is None  # a new goal drops the old commitment
    off = ready(planner)  # the default: off
    off.step(0.0)
    off.step(0.0)
    assert seen[-1] is None


def test_a_robot_turning_on_the_spot_does_not_turn_back_until_it_has_moved(planner, monkeypatch):
    """turn_commitment.py: after an in-place turn to the left, the best candidate turning in place to the right is
    passed over for the best that does not (event pick_kept_turning), until the robot has moved turn_commitment_m
    from where it began turning; where every candidate would turn back, the robot keeps turning left (held_turn)
    until it has turned half round; 0 turns the rule off."""
    left, right, forward_right = (0.0, 0.0, 0.0, 2.0), (0.0, 0.0, 0.0, -2.0), (0.3, 0.0, 0.5, -1.0)
    # the plan calls of three robots in turn: the rule on, with every candidate turning back, off
    crafted(planner, monkeypatch, [[left, right], [right, forward_right, left], [right, left], [right, left],
                                   [left, right], [right, right], [right, right], [right, right], [right, right],
                                   [left, right], [right, forward_right, left]])

    def robot(**settings):
        c = Controller(planner, ControllerSettings(seed=0, **{**SAFE_SETTINGS, **settings}))
        c.set_goal(GOAL)
        c.on_costmap(ROOM, 0.0)
        c.on_odometry(START, 0.0)
        return c

    c = robot(turn_commitment_m=0.05)
    assert c.step(0.0).omega == 2.0  # turning left on the spot: left is held
    kept = c.step(0.1)
    assert (kept.v, kept.omega, kept.events) == (0.5, -1.0, ("pick_kept_turning",))  # a forward arc may bend right
    moved = START.copy()
    moved[0] += 0.03
    c.on_odometry(moved, 0.2)
    assert c.step(0.2).omega == 2.0  # 3 cm from where it began turning: still held
    moved[0] += 0.03
    c.on_odometry(moved, 0.3)
    assert c.step(0.3).omega == -2.0  # 6 cm: released
    c = robot(turn_commitment_m=0.05)
    c.step(0.0)
    held = c.step(0.1)  # nothing else to run: it keeps turning left on the spot, no candidate runs
    assert (held.v, held.omega, held.stop, held.plan) == (0.0, 2.0, None, None) and "held_turn" in held.events
    turned = START.copy()
    for t, yaw in ((0.2, 1.5), (0.3, 3.0)):  # the robot turns left on the spot, 3 rad in all
        turned[2:4] = np.sin(np.arctan2(START[2], START[3]) + yaw), np.cos(np.arctan2(START[2], START[3]) + yaw)
        c.on_odometry(turned, t)
        assert c.step(t).omega == 2.0
    turned[2:4] = np.sin(np.arctan2(START[2], START[3]) + 3.3), np.cos(np.arctan2(START[2], START[3]) + 3.3)
    c.on_odometry(turned, 0.4)
    assert c.step(0.4).omega == -2.0  # half round: the held turn is given up, the best candidate runs
    c = robot(turn_commitment_m=0.0)
    c.step(0.0)
    assert c.step(0.1).omega == -2.0


def test_a_robot_that_gets_nowhere_is_handed_to_the_recovery_until_it_has_moved(planner, monkeypatch):
    """progress_checker.py: a model that only ever turns the robot on the spot plans until progress_timeout_s has
    passed without the robot moving progress_radius_m; then the recovery's checked step towards the goal runs
    (NO_PROGRESS) instead, until the robot has moved that far; progress_timeout_s 0 turns the check off."""
    spin = (0.0, 0.0, 0.0, 2.0)
    crafted(planner, monkeypatch, [[spin]] * 40)

    def robot(**settings):
        c = Controller(planner, ControllerSettings(seed=0, **{**SAFE_SETTINGS, "turn_commitment_m": 0.0, **settings}))
        c.set_goal(GOAL)
        c.on_costmap(ROOM, 0.0)
        return c

    c = robot(progress_radius_m=0.25, progress_timeout_s=1.0)
    for t in np.arange(0.0, 1.0, 0.1):
        c.on_odometry(START, t)
        assert c.step(t).stop is None
    c.on_odometry(START, 1.0)
    stuck = c.step(1.0)
    assert stuck.stop == StopReason.NO_PROGRESS and stuck.plan is None and stuck.v > 0 and "no progress" in stuck.why
    moved = START.copy()
    moved[0] += 0.1
    c.on_odometry(moved, 1.1)
    assert c.step(1.1).stop == StopReason.NO_PROGRESS  # 0.1 m closer to the goal of 0.25: still recovering
    moved[0] += 0.2
    c.on_odometry(moved, 1.2)
    assert c.step(1.2).stop is None  # 0.3 m closer: the model plans again, a new window begins
    off = robot(progress_timeout_s=0.0)
    for t in np.arange(0.0, 2.0, 0.1):
        off.on_odometry(START, t)
        assert off.step(t).stop is None


def test_a_recovery_that_gets_nowhere_hands_the_robot_back_to_the_model_after_one_window(planner, monkeypatch):
    """The recovery drives for progress_timeout_s at most: a robot it cannot bring closer either (here the odometry
    never moves) goes back to the model for a window, then to the recovery again, rather than being held by the
    recovery to the time limit (test map gen1000000 at env seed 60018 on the H200: 358 ticks of it)."""
    crafted(planner, monkeypatch, [[(0.0, 0.0, 0.0, 2.0)]] * 50)
    c = Controller(planner, ControllerSettings(seed=0, **{**SAFE_SETTINGS, "turn_commitment_m": 0.0,
                                                          "progress_radius_m": 0.25, "progress_timeout_s": 1.0}))
    c.set_goal(GOAL)
    c.on_costmap(ROOM, 0.0)
    stops = []
    for tick in range(45):
        c.on_odometry(START, tick / 10)
        stops.append(c.step(tick / 10).stop)
    model, recovering = [None] * 10, [StopReason.NO_PROGRESS] * 10
    assert stops == model + recovering + model + recovering + model[:5]


def test_a_robot_that_keeps_moving_but_comes_no_closer_to_the_goal_is_stuck_too(planner, monkeypatch):
    """Progress is towards the goal, along free space: a robot driving back and forth across the room (as one did
    between a dead end and the way out on fresh map gen2000004) is stuck after progress_timeout_s, however far it
    drives; one driving towards the goal at a fortieth of that speed is not."""
    crafted(planner, monkeypatch, [[(0.0, 0.0, 0.0, 2.0)]] * 60)
    c = Controller(planner, ControllerSettings(seed=0, **{**SAFE_SETTINGS, "progress_radius_m": 0.25,
                                                          "progress_timeout_s": 1.0}))
    c.set_goal(GOAL)
    c.on_costmap(ROOM, 0.0)
    commands = []
    for tick in range(15):
        state = START.copy()
        state[1] += 2.0 * (tick % 2)  # 2 m north and back, every tick: across the goal's direction
        c.on_odometry(state, 0.1 * tick)
        commands.append(c.step(0.1 * tick).stop)
    assert commands[:10] == [None] * 10 and StopReason.NO_PROGRESS in commands[10:]
    creeping = Controller(planner, ControllerSettings(seed=0, **{**SAFE_SETTINGS, "progress_radius_m": 0.25,
                                                                 "progress_timeout_s": 1.0}))
    creeping.set_goal(GOAL)
    creeping.on_costmap(ROOM, 0.0)
    for tick in range(30):
        state = START.copy()
        state[0] += 0.05 * tick  # 0.5 m/s towards the goal, along x
        creeping.on_odometry(state, 0.1 * tick)
        assert creeping.step(0.1 * tick).stop is None


def test_a_progress_check_switched_on_at_run_time_measures_from_then(planner, monkeypatch):
    """`ros2 param set /planner progress_timeout_s 5`: a robot that stood still while the check was off is not stuck
    the moment it is switched on; its window begins then."""
    crafted(planner, monkeypatch, [[(0.0, 0.0, 0.0, 2.0)]] * 40)
    on = ControllerSettings(seed=0, **{**SAFE_SETTINGS, "turn_commitment_m": 0.0, "progress_timeout_s": 1.0})
    c = Controller(planner, on)
    c.set_goal(GOAL)
    c.on_costmap(ROOM, 0.0)
    c.on_odometry(START, 0.0)
    assert c.step(0.0).stop is None  # the window begins at 0 s
    c.set_settings(dataclasses.replace(on, progress_timeout_s=0.0))
    for t in np.arange(0.1, 3.0, 0.1):
        c.on_odometry(START, t)
        assert c.step(t).stop is None
    c.set_settings(on)
    for t in np.arange(3.0, 3.9, 0.1):
        c.on_odometry(START, t)
        assert c.step(t).stop is None  # within 1 s of being switched on
    c.on_odometry(START, 4.1)
    assert c.step(4.1).stop == StopReason.NO_PROGRESS
