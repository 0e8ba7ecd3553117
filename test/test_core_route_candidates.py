"""Route candidates (core/route_candidates.py): some candidates' positions held to a route follower's rollout along the
way round risk, at the collision check's clearance; the critic scores them with the rest."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)
from test_core_map_input import grid_with, level_grid, map_config

from rs_diffuser_ros.core.config import PlannerConfig
from rs_diffuser_ros.core.map_input import PASSABLE_CLEARANCE_M, UNREACHABLE, PlanningMap
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.route_candidates import (ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA, follow_route, walk_route)
from test_core_helpers import tiny_config


def walk(pm: PlanningMap, start, goal, length=12.0, way=0, margin=PlannerConfig().route_risk_margin_m):
    """The way round risk (way 0) or the shortest (way 1) from start to goal."""
    next_cell, step_m = pm.route_steps(torch.tensor([goal], dtype=torch.float32), margin)
    return walk_route(next_cell[:, way], step_m[:, way], pm.layers.layers.shape[-1], pm.layers.origin[0],
                      pm.layers.resolution, torch.tensor([start], dtype=torch.float32), length)


def test_the_route_goes_round_a_risky_region_at_a_margin_and_ends_at_the_goal():
    occ = grid_with()  # an empty 8 x 6 m room, x -4..4, y -3..3
    risk = level_grid(occ, [(-1.0, -1.5, 1.0, 3.0)])  # risk across the straight line, open below y = -1.5
    pm = PlanningMap.from_grids(occ, risk)
    route, along = walk(pm, (-3.0, 0.0), (3.0, 0.0))
    route, along = route[0], along[0]
    assert torch.allclose(route[-1], torch.tensor([3.0, 0.0]), atol=0.1)  # it got there (and stopped)
    assert (along.diff() >= 0).all() and along[-1] > 7.0  # round below the region, not the 6 m straight line
    between = (route[:, 0] > -1.0) & (route[:, 0] < 1.0)
    assert between.any() and (route[between, 1] < -1.5 - 0.15).all()  # outside the region, with a margin
    shortest, along = walk(pm, (-3.0, 0.0), (3.0, 0.0), way=1)
    assert along[0, -1] == pytest.approx(6.0, abs=0.15) and shortest[0, :, 1].abs().max() < 0.1  # straight through


@pytest.mark.parametrize("start, heading", [((-2.5, -2.0), 0.0), ((-2.5, 1.0), 0.0), ((-2.5, -2.0), math.pi)])
def test_a_wider_risk_margin_keeps_the_follower_off_a_region_s_corners(start, heading):
    # A region from the bottom wall to y = 0, the goal beyond it: the way round turns over both its top corners. Pure
    # pursuit cuts a corner by up to its look-ahead over root 2: at a 0.2 m margin (the shipped models') its rollout
    # came within 0.12 m of the region, at 0.4 m it keeps more than 0.25 m (robots a little off their rollout clipped
    # regions' corners at 0.2: docs/method_choices.md, "Route candidates off the regions' corners").
    occ = grid_with()
    x0, y0, x1, y1 = -1.0, -3.0, 1.0, 0.0
    pm = PlanningMap.from_grids(occ, level_grid(occ, [(x0, y0, x1, y1)]))
    state = torch.tensor([[*start, math.sin(heading), math.cos(heading), 0.0, 0.0]])
    nearest = {}
    for margin in (0.2, 0.4):
        route, along = walk(pm, start, (2.5, -2.0), length=20.0, margin=margin)
        xy = follow_route(route, along, state, 80, 0.2, 1.0, 2.0, ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA).positions[0]
        off_x = torch.clamp(torch.maximum(x0 - xy[:, 0], xy[:, 0] - x1), min=0.0)
        off_y = torch.clamp(torch.maximum(y0 - xy[:, 1], xy[:, 1] - y1), min=0.0)
        nearest[margin] = float(torch.hypot(off_x, off_y).min())
        assert (xy[-1] - torch.tensor([2.5, -2.0])).norm() < 0.15  # it got there
    assert nearest[0.4] > 0.25 and nearest[0.4] > nearest[0.2] + 0.05


def test_the_way_round_goes_round_even_where_the_detour_is_many_times_the_crossing():
    # A thin risky band across the room, open only at the top: crossing it costs 0.4 m, going round ~10 m. Counting a
    # metre inside SAFE_DETOUR_WEIGHT (5) times, as the model's safe distance does, the "way round" crossed it, and on
    # 7 of the 25 trade-off test maps no route candidate stayed out (docs/method_choices.md); ROUTE_RISK_WEIGHT does.
    occ = grid_with()
    risk = level_grid(occ, [(-0.2, -3.0, 0.2, 2.0)])
    pm = PlanningMap.from_grids(occ, risk)
    route, along = walk(pm, (-0.8, -2.5), (0.8, -2.5), length=20.0)
    assert torch.allclose(route[0, -1], torch.tensor([0.8, -2.5]), atol=0.1) and along[0, -1] > 9.0
    in_band = (route[0, :, 0].abs() < 0.2 + 0.1) & (route[0, :, 1] < 2.0 + 0.1)
    assert not in_band.any()
    shortest, along = walk(pm, (-0.8, -2.5), (0.8, -2.5), way=1)
    assert along[0, -1] < 2.0


def test_the_route_passes_a_slit_whose_centre_line_keeps_the_route_clearance():
    # A wall across the room with an 0.8 m slit (narrow_corridor's safe way): its centre line keeps 0.4 m from both
    # sides, more than the route's 0.35 m, measured as the collision check measures. The max-pooled obstacle cost,
    # which reads a feature cell by its finer cell nearest a wall, closed it, and the way went round the wall's end.
    occ = grid_with([(-0.1, -3.0, 0.1, -0.4), (-0.1, 0.4, 0.1, 2.0)])
    pm = PlanningMap.from_grids(occ, None, passable_clearance_m=PASSABLE_CLEARANCE_M)
    route, along = walk(pm, (-3.0, 0.0), (3.0, 0.0))
    assert along[0, -1] < 6.5 and route[0, :, 1].abs().max() < 0.3  # straight through the slit
    blind = PlanningMap(dataclasses.replace(pm.layers, route_passable=None))  # the obstacle cost's reading
    route, _ = walk(blind, (-3.0, 0.0), (3.0, 0.0))
    assert (route[0, :, 1] > 2.0).any()


def test_the_route_keeps_the_collision_check_s_clearance_where_the_model_s_own_distance_does_not():
    # A wall across the room with a 0.65 m gap: the model's passable cells pass it (0.25 m from walls: a 0.2 m robot
    # and the check's 0.05 m margin), and the route (0.35 m from walls, for the corners its follower cuts) goes round
    # the wall's end instead.
    occ = grid_with([(-0.1, -3.0, 0.1, -0.325), (-0.1, 0.325, 0.1, 2.0)])
    pm = PlanningMap.from_grids(occ, None, passable_clearance_m=PASSABLE_CLEARANCE_M)
    plain = pm.distance_fields(torch.tensor([[3.0, 0.0]]))[0, 0]
    route, _ = walk(pm, (-3.0, 0.0), (3.0, 0.0))
    assert plain[pm.layers.cells_of(torch.tensor([-3.0, 0.0])).unbind()] < 6.5  # the model's field: through the gap
    assert (route[0, :, 1] > 2.0).any()  # the route: round the wall's end at y = 2
    fields = pm.layers.route_distance(torch.tensor([[3.0, 0.0]]), PlannerConfig().route_risk_margin_m)[0]
    row, col = pm.layers.cells_of(torch.tensor([0.0, 0.0])).tolist()
    assert (fields[:, row, col] == UNREACHABLE).all()  # the gap's cell: closed to both ways


def test_a_robot_facing_away_turns_on_the_spot_before_it_follows_the_route():
    route = torch.stack([torch.linspace(0, 5, 51), torch.zeros(51)], -1)[None]  # due east from the origin
    along = torch.linspace(0, 5, 51)[None]
    facing_west = torch.tensor([[0.0, 0.0, math.sin(math.pi), math.cos(math.pi), 0.0, 0.0]])
    xy = follow_route(route, along, facing_west, 31, 0.2, 1.0, 2.0, ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA).positions[0]
    assert xy[:3].norm(dim=-1).max() < 0.05  # turning (the heading error is over a radian): no drive
    assert xy[-1, 0] > 3.0 and xy[-1, 1].abs() < 0.2  # then east along the route
    steps = torch.cat([torch.zeros(1, 2), xy]).diff(dim=0).norm(dim=-1)
    assert steps.max() <= 1.0 * 0.2 + 1e-5  # never faster than max_v
    facing_east = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    xy = follow_route(route, along, facing_east, 31, 0.2, 1.0, 2.0, ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA).positions[0]
    assert xy[0, 0] == pytest.approx(0.2, abs=1e-5)  # already under way
    assert xy[-1, 0] == pytest.approx(5.0, abs=0.15)  # and it brakes to a stop at the route's end
    assert (xy[-1] - xy[-2]).norm() < 0.05


def test_the_planner_holds_route_candidates_to_each_way_and_only_those():
    occ = grid_with()
    risk = level_grid(occ, [(-1.0, -1.5, 1.0, 3.0)])
    cfg = map_config()
    cfg.model.route_label = True
    cfg.planner.candidates, cfg.planner.route_candidates = 8, 2
    planner = RiskSensitivePlanner.from_config(cfg.validate(), device="cpu")
    pm = PlanningMap.from_grids(occ, risk)
    state = np.array([-2.5, 0.0, 0.0, 1.0, 0.5, 0.0], np.float32)
    result = planner.plan(state, np.array([3.0, 0.0], np.float32), map_input=pm, seed=0)
    h = planner.horizon

    def followed(way):
        route, along = walk(pm, state[:2], (3.0, 0.0), way=way)
        rollout = follow_route(route, along, torch.as_tensor(state)[None], h - 1, 0.1 * cfg.model.plan_stride, 1.0,
                               2.0, ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA)
        return rollout.positions[0].numpy(), rollout.first_command[0].numpy()
    (round_risk, round_command), (shortest, shortest_command) = followed(0), followed(1)
    assert not np.allclose(round_risk, shortest, atol=0.05)  # the ways part here
    held = {0: round_risk, 1: round_risk, 4: shortest, 5: shortest}  # label 0: candidates 0-3, label 1: 4-7
    for k in range(8):
        on_way = [np.allclose(result.candidates[k, 1:, :2], way, atol=1e-4) for way in (round_risk, shortest)]
        assert on_way == [k in held and held[k] is round_risk, k in held and held[k] is shortest], k
    # A held candidate is driven by its follower's own command (the inverse dynamics, reading the denoiser's fill,
    # need not brake where the follower does); the others by the inverse dynamics.
    for k in (0, 1):
        np.testing.assert_allclose(result.candidate_actions[k], round_command, atol=1e-5)
    for k in (4, 5):
        np.testing.assert_allclose(result.candidate_actions[k], shortest_command, atol=1e-5)
    assert not np.allclose(round_command, shortest_command, atol=1e-3)
    planner.configure(route_candidates=0)
    plain = planner.plan(state, np.array([3.0, 0.0], np.float32), map_input=pm, seed=0)
    assert not any(np.allclose(plain.candidates[k, 1:, :2], round_risk, atol=0.05) for k in range(8))


def test_route_candidates_are_refused_for_a_model_without_the_safe_distance_field():
    planner = RiskSensitivePlanner.from_config(tiny_config(), device="cpu")  # a per-map model
    with pytest.raises(ValueError, match="route_candidates=2 needs a map-conditioned robot model"):
        planner.configure(route_candidates=2)
    assert planner.config.planner.route_candidates == 0  # a refused change leaves the setting as it was
    no_safe = RiskSensitivePlanner.from_config(map_config(safe=False), device="cpu")
    with pytest.raises(ValueError, match="safe distance"):
        no_safe.configure(route_candidates=2)


def test_the_route_follower_drives_as_the_data_s_robot():
    from risky_nav import load_layout
    from risky_nav import policies
    from rs_diffuser_ros.core import route_candidates
    robot = load_layout("default").robot
    assert (ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA) == (robot.max_accel, robot.max_alpha)
    for name in ("LOOKAHEAD", "HEADING_GAIN", "TURN_IN_PLACE", "GOAL_SLOWDOWN"):
        ours = getattr(route_candidates, {"LOOKAHEAD": "LOOKAHEAD_M", "TURN_IN_PLACE": "TURN_IN_PLACE_RAD"}.get(name, name))
        assert ours == getattr(policies, name), name


def test_the_fast_path_holds_route_candidates_as_the_reference_does():
    from test_core_fastpath import FP32_TOL, assert_same_plans, reference_and_fast
    occ = grid_with()
    risk = level_grid(occ, [(-1.0, -1.5, 1.0, 3.0)])
    cfg = map_config()
    cfg.planner.candidates, cfg.planner.route_candidates = 6, 2
    planner = RiskSensitivePlanner.from_config(cfg.validate(), device="cpu")
    states = np.array([[-2.5, 0.0, 0.0, 1.0, 0.5, 0.0], [-2.0, 1.0, 1.0, 0.0, 0.0, 0.0]], np.float32)
    ref, fast = reference_and_fast(planner, states=states, goals=np.array([[3.0, 0.0], [3.0, 0.0]], np.float32),
                                   alpha=0.1, map_input=PlanningMap.from_grids(occ, risk), seed=3)
    assert_same_plans(ref, fast, FP32_TOL)


def test_a_state_whose_route_goes_nowhere_gets_ordinary_candidates():
    occ = grid_with([(-0.1, -3.0, 0.1, 3.0)])  # a wall right across the room: the goal cannot be reached
    cfg = map_config()
    cfg.planner.candidates, cfg.planner.route_candidates = 4, 4
    planner = RiskSensitivePlanner.from_config(cfg.validate(), device="cpu")
    pm = PlanningMap.from_grids(occ, None)
    state = np.array([-2.5, 0.0, 0.0, 1.0, 0.5, 0.0], np.float32)
    held = planner.plan(state, np.array([3.0, 0.0], np.float32), map_input=pm, seed=0)
    planner.configure(route_candidates=0)
    free = planner.plan(state, np.array([3.0, 0.0], np.float32), map_input=pm, seed=0)
    assert np.allclose(held.candidates, free.candidates, atol=1e-5)  # nothing held: the same draws, the same plans
