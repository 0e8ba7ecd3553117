"""Map conditioning: the map layers, goal distance fields, egocentric patches, the critic's lookup along a
plan, the planner's and controller's map input, warm starts, and a map-conditioned training run."""
import math
from typing import NamedTuple

import numpy as np
import pytest
import torch
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.config import CoreConfig, ConfigError
from rs_diffuser_ros.control.settings import ControllerSettings
from rs_diffuser_ros.core.map_input import (LEGACY_PASSABLE, PASSABLE_CLEARANCE_M, PATCH_CHANNELS, ROUTE_SCALE_M, UNREACHABLE,
                                            MapLayers, PlanningMap, sample_along)
from rs_diffuser_ros.core.models.networks import NETWORK_NAMES, build_networks
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import load_grown, train


class Grid(NamedTuple):
    data: np.ndarray
    resolution: float
    origin_x: float
    origin_y: float


RES = 0.05


def grid_with(boxes=(), width=8.0, height=6.0, origin=(-4.0, -3.0)):
    """An occupancy grid (0 / 100) with the given boxes (x0, y0, x1, y1) in world metres filled."""
    rows, cols = int(round(height / RES)), int(round(width / RES))
    data = np.zeros((rows, cols), np.int8)
    xs = origin[0] + (np.arange(cols) + 0.5) * RES
    ys = origin[1] + (np.arange(rows) + 0.5) * RES
    for x0, y0, x1, y1 in boxes:
        data[np.ix_((ys >= y0) & (ys <= y1), (xs >= x0) & (xs <= x1))] = 100
    return Grid(data, RES, *origin)


def level_grid(like: Grid, boxes, level: int = 50):
    g = grid_with(boxes, like.data.shape[1] * RES, like.data.shape[0] * RES, (like.origin_x, like.origin_y))
    return Grid(np.where(g.data > 0, level, 0).astype(np.int8), RES, like.origin_x, like.origin_y)


def map_config(safe: bool = True, **training) -> CoreConfig:
    cfg = tiny_config(**training)
    cfg.model.map_patch_cells, cfg.model.map_patch_m, cfg.model.map_embedding = 16, 3.2, 8
    cfg.model.map_safe_distance = safe
    return cfg.validate()


def test_a_patch_is_world_aligned_and_centred_on_the_robot():
    occ = grid_with([(1.0, -3.0, 1.2, 3.0)])  # a wall 1 m east of the robot at the origin
    risk = level_grid(occ, [(-3.0, 0.8, 3.0, 1.6)])  # a risky band 0.8-1.6 m north
    pm = PlanningMap.from_grids(occ, risk)
    patch = pm.patches(torch.tensor([[0.0, 0.0]]), torch.tensor([[-3.0, 0.0]]), 32, 6.4)[0]
    assert patch.shape == (len(PATCH_CHANNELS), 32, 32)  # a model reads its first model.map_channels
    # Cell (row, col) has its centre at (-3.1 + 0.2 col, -3.1 + 0.2 row) from the robot: row = y, col = x.
    assert patch[0, 16, 21] > 0.9 and patch[0, 16, 10] == 0  # wall at x = +1.1 m, open floor at x = -1.1 m
    assert patch[1, 21, 16] == 1 and patch[1, 10, 16] == 0  # risk at y = +1.1 m, none at y = -1.1 m
    assert patch[2, 21, 16] == pytest.approx(math.log1p(50) / math.log(101), abs=1e-5)
    # The goal is west: the distance channel falls towards it and rises away from it.
    assert patch[3, 16, 5] < 0 < patch[3, 16, 18]
    # Beyond the map's edge (the robot near the south edge): wall, no risk.
    edge = pm.patches(torch.tensor([[0.0, -2.9]]), torch.tensor([[-3.0, 0.0]]), 32, 6.4)[0]
    assert edge[0, 2, 16] == pytest.approx(1.0) and edge[1, 2, 16] == 0


def test_goal_distance_is_the_route_round_walls_and_unreachable_behind_them():
    open_map = MapLayers.from_grids(grid_with().data, RES, -4.0, -3.0)
    d = open_map.goal_distance(torch.tensor([[2.0, 0.0]]))[0, 0]
    rc = open_map.cells_of(torch.tensor([-2.0, 0.0]))
    assert d[rc[0], rc[1]] == pytest.approx(4.0, abs=0.1)  # straight line in the open
    # A wall from y = -3 to 2 at x = 0: the way round its end at y = 2 (plus clearance) is longer.
    walled = MapLayers.from_grids(grid_with([(-0.1, -3.0, 0.1, 2.0)]).data, RES, -4.0, -3.0)
    d = walled.goal_distance(torch.tensor([[2.0, 0.0]]))[0, 0]
    around = 2 * math.hypot(2.0, 2.2)
    assert d[rc[0], rc[1]] == pytest.approx(around, rel=0.08)
    # A closed room: cells inside cannot reach a goal outside it.
    boxed = MapLayers.from_grids(grid_with([(-3.0, -1.0, -1.0, -0.9), (-3.0, 0.9, -1.0, 1.0), (-3.0, -1.0, -2.9, 1.0),
                                            (-1.1, -1.0, -1.0, 1.0)]).data, RES, -4.0, -3.0)
    d = boxed.goal_distance(torch.tensor([[2.0, 0.0]]))[0, 0]
    inside = boxed.cells_of(torch.tensor([-2.0, 0.0]))
    assert d[inside[0], inside[1]] == UNREACHABLE


def test_goal_distance_runs_only_where_a_robot_s_centre_fits():
    # A wall from y = -3 to 2 at x = 0 with a gap at y = 0: 0.45 m wide it is no way for a robot of 0.2 m radius with
    # the collision check's 0.05 m margin (the distance goes round the wall's end), 0.7 m wide it is. The old rule (a
    # cell from a wall, LEGACY_PASSABLE, what models before f1 read) let 0.35 m through, and robots followed the
    # distance into such gaps and stuck (gen0009007).
    def from_west(gap, clearance=PASSABLE_CLEARANCE_M):
        occ = grid_with([(-0.1, -3.0, 0.1, -gap / 2), (-0.1, gap / 2, 0.1, 2.0)])
        layers = MapLayers.from_grids(occ.data, RES, -4.0, -3.0, passable_clearance_m=clearance)
        assert layers.passable_clearance_m == clearance  # the rule travels with the layers (the planner checks it)
        rc = layers.cells_of(torch.tensor([-2.0, 0.0]))
        return float(layers.goal_distance(torch.tensor([[2.0, 0.0]]))[0, 0, rc[0], rc[1]])

    around = 2 * math.hypot(2.0, 2.0 + PASSABLE_CLEARANCE_M)  # round the wall's end, keeping the clearance
    assert from_west(0.45) == pytest.approx(around, rel=0.08)
    assert from_west(0.7) == pytest.approx(4.0, abs=0.1)
    assert from_west(0.45, LEGACY_PASSABLE) == pytest.approx(4.0, abs=0.1)  # the old rule: straight through
    # A diagonal gap between two corners, 0.35 m corner to corner (0.25 m each way): closed too.
    occ = grid_with([(-1.0, -3.0, 0.0, 0.0), (0.25, 0.25, 1.0, 3.0)])
    layers = MapLayers.from_grids(occ.data, RES, -4.0, -3.0, passable_clearance_m=PASSABLE_CLEARANCE_M)
    d = layers.goal_distance(torch.tensor([[2.0, -2.0]]))[0, 0]
    rc = layers.cells_of(torch.tensor([-2.0, 2.0]))
    assert d[rc[0], rc[1]] == UNREACHABLE


def test_every_point_of_a_passable_cell_passes_the_collision_check():
    # gen1000014's gap: two boxes whose corners (0.3, 0.1) and (0.8, 0.3) leave 0.54 m corner to corner. A feature
    # cell's centre there kept 0.25 m, so the old rule called it passable and the model's goal distance ran through;
    # points between those centres do not keep it, the check refused every plan through, and robots circled at the
    # gap for 25 s. Now no point of a passable cell is one the check refuses, and the distance goes round.
    from rs_diffuser_ros.control.collision import ClearanceMap
    occ = grid_with([(-1.5, -0.5, 0.3, 0.1), (0.8, 0.3, 1.5, 1.5)])
    layers = MapLayers.from_grids(occ.data, RES, -4.0, -3.0, passable_clearance_m=PASSABLE_CLEARANCE_M)
    check = ClearanceMap(occ, unknown_is_obstacle=True)
    rows, cols = torch.nonzero(layers.passable[0], as_tuple=True)
    offsets = torch.linspace(0.0, layers.resolution, 6)[:5] + 1e-4  # points all over each cell
    ox, oy = torch.meshgrid(offsets, offsets, indexing="xy")
    points = torch.stack([cols[:, None] * layers.resolution + ox.flatten()[None] - 4.0,
                          rows[:, None] * layers.resolution + oy.flatten()[None] - 3.0], -1)
    assert float(check.at(points).min()) >= PASSABLE_CLEARANCE_M - 1e-6
    d = layers.goal_distance(torch.tensor([[1.2, -1.0]]))[0, 0]
    rc = layers.cells_of(torch.tensor([0.0, 1.2]))
    assert float(d[rc[0], rc[1]]) > 3.0  # not the 2.4 m straight through the gap: round a box


def test_a_slit_reads_as_wide_as_the_centre_rule_made_it_but_routes_keep_to_its_whole_cells():
    # narrow_corridor's slit: 0.8 m between walls, its centre line on a feature cell edge. The check lets a robot's
    # centre within 0.15 m of that line; by the centre rule (as the model was trained) 4 cells across are passable, by
    # the whole-cell rule 2. Fields of 2 cells made the critic read the way through as a worse one (every episode
    # entered the risk, not 76.5 %). Now the outer 2 read their inner neighbour's distance plus a step, and no route
    # runs through them: the diagonal-gap test above still holds.
    occ = grid_with([(-4.0, 0.4, 4.0, 3.0), (-4.0, -3.0, 4.0, -0.4)])  # a corridor along x, |y| < 0.4 m
    layers = MapLayers.from_grids(occ.data, RES, -4.0, -3.0, passable_clearance_m=PASSABLE_CLEARANCE_M)
    d = layers.goal_distance(torch.tensor([[3.0, 0.0]]))[0, 0]
    col = int(layers.cells_of(torch.tensor([-2.0, 0.0]))[1])
    across = d[:, col]
    passable = layers.passable[0, :, col]
    assert int(passable.sum()) == 2
    finite = torch.nonzero(across < UNREACHABLE).flatten()
    assert len(finite) == 4
    steps = torch.tensor([math.sqrt(2), 1.0, math.sqrt(2)]) * layers.resolution
    for row, inner in ((int(finite[0]), int(finite[0]) + 1), (int(finite[-1]), int(finite[-1]) - 1)):
        assert not passable[row] and passable[inner]  # a fringe cell beside a passable one ...
        expected = float((d[inner, col - 1:col + 2] + steps).min())  # ... reads its distance and a step
        assert float(across[row]) == pytest.approx(expected, abs=1e-5)


def test_training_s_stacked_maps_read_the_fields_a_planning_map_reads():
    # Training stacks its maps (MapLayers.stack) and must learn on the fields the planner reads: the fringe travels.
    slit = grid_with([(-4.0, 0.4, 4.0, 3.0), (-4.0, -3.0, 4.0, -0.4)])
    alone = MapLayers.from_grids(slit.data, RES, -4.0, -3.0, passable_clearance_m=PASSABLE_CLEARANCE_M)
    smaller = grid_with([(0.0, 0.0, 1.0, 1.0)], width=6.0, height=4.0)
    stacked = MapLayers.stack([MapLayers.from_grids(smaller.data, RES, -4.0, -3.0,
                                                    passable_clearance_m=PASSABLE_CLEARANCE_M), alone])
    goal = torch.tensor([[3.0, 0.0]])
    expected = alone.goal_distance(goal)[0, 0]
    h, w = expected.shape
    assert torch.equal(stacked.goal_distance(goal, index=torch.tensor([1]))[0, 0, :h, :w], expected)


def test_a_model_plans_only_on_the_goal_distance_it_was_trained_with():
    # A checkpoint's config without the field (every model before f1) reads the one-cell rule; a map built by the
    # other rule is refused, not planned on with channels the model never saw.
    assert CoreConfig.from_dict({"model": {"map_patch_cells": 16}}).model.map_passable_clearance_m == LEGACY_PASSABLE
    planner = RiskSensitivePlanner.from_config(map_config(), device="cpu", seed=0)
    occ = grid_with()
    state, goal = np.array([-2.0, 0.0, 0.0, 1.0, 0.0, 0.0]), np.array([2.0, 0.0])
    other = PlanningMap.from_grids(occ, level_grid(occ, []), passable_clearance_m=PASSABLE_CLEARANCE_M)
    with pytest.raises(ValueError, match="map_passable_clearance_m"):
        planner.plan(state, goal, seed=0, map_input=other)
    planner.plan(state, goal, seed=0, map_input=PlanningMap.from_grids(occ, level_grid(occ, [])))  # its own: plans


def test_the_passable_clearance_keeps_at_least_the_controller_s_robot_and_margin():
    # What the model's distance calls passable the collision check lets the robot drive through: its rule may keep
    # more than the check (0.25 m against 0.22 m since the margin came down to 0.02 m), never less.
    s = ControllerSettings()
    assert PASSABLE_CLEARANCE_M >= s.robot_radius_m + s.collision_margin_m - 1e-9


def test_the_safe_distance_goes_round_risk_and_equals_the_plain_one_without_risk():
    occ = grid_with()
    band = [(-1.0, -3.0, 1.0, 1.5)]  # risk across the straight route, free way round its north end
    layers = MapLayers.from_grids(occ.data, RES, -4.0, -3.0, level_grid(occ, band).data)
    d = layers.goal_distance(torch.tensor([[3.0, 0.0]]), safe=True)[0]
    rc = layers.cells_of(torch.tensor([-3.0, 0.0]))
    plain, safe = float(d[0, rc[0], rc[1]]), float(d[1, rc[0], rc[1]])
    assert plain == pytest.approx(6.0, abs=0.1)
    assert safe == pytest.approx(2 * math.hypot(2.0, 1.5) + 2.0, rel=0.08)  # round the band's north end
    no_risk = MapLayers.from_grids(occ.data, RES, -4.0, -3.0).goal_distance(torch.tensor([[3.0, 0.0]]), safe=True)[0]
    assert torch.equal(no_risk[0], no_risk[1])


def test_the_route_channels_give_the_route_length_and_the_detour_round_risk_in_metres():
    occ = grid_with()
    band = [(-1.0, -3.0, 1.0, 1.5)]  # as above: the way round risk is ~1 m longer than the straight route
    start, goal = torch.tensor([[-3.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    patch = PlanningMap.from_grids(occ, level_grid(occ, band)).patches(start, goal, 32, 6.4)[0]
    route, detour = patch[5, 15:17, 15:17].mean(), patch[6, 15:17, 15:17].mean()  # at the robot
    assert float(route) * ROUTE_SCALE_M == pytest.approx(6.0, abs=0.15)
    assert float(detour) * ROUTE_SCALE_M == pytest.approx(2 * math.hypot(2.0, 1.5) + 2.0 - 6.0, abs=0.3)
    # Absolute, not relative to the robot: the same cell reads the same from another robot position.
    other = PlanningMap.from_grids(occ, level_grid(occ, band)).patches(torch.tensor([[-2.0, 0.0]]), goal, 32, 6.4)[0]
    assert torch.allclose(other[5:, 16, 5:10], patch[5:, 16, 10:15], atol=0.015)  # within a 0.1 m feature cell
    # Without risk there is nothing to go round.
    no_risk = PlanningMap.from_grids(occ).patches(start, goal, 32, 6.4)[0]
    assert float(no_risk[6].abs().max()) == 0.0


def test_the_route_risk_sums_the_hazard_met_along_the_plain_route_to_the_goal():
    occ = grid_with()
    band = [(-1.0, -3.0, 1.0, 1.5)]  # 2 m of level 50 across the straight route, free round its north end
    goal = torch.tensor([[3.0, 0.0]])
    pm = PlanningMap.from_grids(occ, level_grid(occ, band, level=50))
    before = pm.patches(torch.tensor([[-3.0, 0.0]]), goal, 32, 6.4)[0, 7]
    assert float(before[15:17, 15:17].mean()) == pytest.approx(0.5 * 2.0, abs=0.12)  # level/100 x metres crossed
    past = pm.patches(torch.tensor([[2.0, 0.0]]), goal, 32, 6.4)[0, 7]
    assert float(past[15:17, 15:17].abs().max()) == 0.0  # the route from beyond the band meets no risk
    # Twice the hazard, twice the route risk; no risk, none; and the cell's route, not the cell's own hazard: from
    # above the band's free north end the plain route goes round it.
    double = PlanningMap.from_grids(occ, level_grid(occ, band, level=100)).patches(torch.tensor([[-3.0, 0.0]]), goal, 32, 6.4)
    assert float(double[0, 7, 15:17, 15:17].mean()) == pytest.approx(2 * float(before[15:17, 15:17].mean()), rel=0.02)
    assert float(PlanningMap.from_grids(occ).patches(torch.tensor([[-3.0, 0.0]]), goal, 32, 6.4)[0, 7].abs().max()) == 0.0
    above = pm.patches(torch.tensor([[0.0, 2.8]]), goal, 32, 6.4)[0, 7]
    assert float(above[15:17, 15:17].abs().max()) == 0.0


def test_the_severity_channels_give_the_event_size_here_and_the_largest_along_the_route():
    occ = grid_with()
    near, far = (-1.0, -3.0, -0.5, 3.0), (1.0, -3.0, 1.5, 3.0)  # two walls of risk across the map, both crossed
    risk = level_grid(occ, [near, far], level=20)
    severity = Grid(level_grid(occ, [near], level=30).data + level_grid(occ, [far], level=80).data, RES,
                    occ.origin_x, occ.origin_y)
    pm = PlanningMap.from_grids(occ, risk, severity_grid=severity)
    goal = torch.tensor([[3.5, 0.0]])

    def centre(x, channel):  # the channel at the robot's own cells, from (x, 0) towards the goal
        patch = pm.patches(torch.tensor([[x, 0.0]]), goal, 32, 6.4, channels=10)[0]
        return float(patch[channel, 15:17, 15:17].mean())

    assert centre(-3.0, 8) == 0.0 and centre(-0.75, 8) == pytest.approx(0.3) and centre(1.25, 8) == pytest.approx(0.8)
    assert centre(-3.0, 9) == pytest.approx(0.8)  # both ahead: the larger
    assert centre(0.25, 9) == pytest.approx(0.8)  # between them: the far one's
    assert centre(2.5, 9) == 0.0  # past both
    # No severity layer: an event of unknown size reads as the largest the scale holds, where there is risk only.
    unknown = PlanningMap.from_grids(occ, risk).patches(torch.tensor([[-0.75, 0.0]]), goal, 32, 6.4, channels=10)[0]
    assert float(unknown[8, 15:17, 15:17].mean()) == 1.0 and float(unknown[8, :, :5].max()) == 0.0
    # A risky cell whose severity reads 0 (or unknown) contradicts its hazard: unknown, full scale.
    blank = Grid(np.zeros_like(severity.data), RES, occ.origin_x, occ.origin_y)
    zero = PlanningMap.from_grids(occ, risk, severity_grid=blank).patches(torch.tensor([[-0.75, 0.0]]), goal, 32, 6.4,
                                                                         channels=10)[0]
    assert float(zero[8, 15:17, 15:17].mean()) == 1.0
    # A severity without a hazard is no risk.
    no_hazard = PlanningMap.from_grids(occ, None, severity_grid=severity)
    assert float(no_hazard.patches(torch.tensor([[-0.75, 0.0]]), goal, 32, 6.4, channels=10)[0, 8:].abs().max()) == 0.0
    with pytest.raises(ValueError, match="risk severity map's geometry"):
        PlanningMap.from_grids(occ, risk, severity_grid=Grid(severity.data[:-1], RES, occ.origin_x, occ.origin_y))


def test_the_route_risk_field_is_computed_only_for_a_model_that_reads_it():
    occ = grid_with()
    pm = PlanningMap.from_grids(occ, level_grid(occ, [(-1.0, -3.0, 1.0, 1.5)]))
    start, goal = torch.tensor([[-3.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    seven = pm.patches(start, goal, 32, 6.4, channels=7)
    assert seven.shape[1] == 7 and {c[2] for c in pm._fields} == {2}  # only the two distance fields
    eight = pm.patches(start, goal, 32, 6.4, channels=8)
    assert torch.equal(eight[:, :7], seven) and {c[2] for c in pm._fields} == {2, 3}
    ten = pm.patches(start, goal, 32, 6.4, channels=10)  # the severity model's: the route severity field as well
    assert torch.equal(ten[:, :8], eight) and {c[2] for c in pm._fields} == {2, 3, 4}
    with pytest.raises(ValueError, match="route risk comes with the safe distance"):
        pm.layers.goal_distance(goal, route_risk=True)
    with pytest.raises(ValueError, match="route severity comes with the route risk"):
        pm.layers.goal_distance(goal, safe=True, severity=True)
    with pytest.raises(ValueError, match="8 patch channels asked for"):
        pm.layers.patches(start, pm.distance_fields(goal), 32, 6.4, channels=8)
    with pytest.raises(ValueError, match="10 patch channels asked for"):
        pm.layers.patches(start, pm.distance_fields(goal, route_risk=True), 32, 6.4, channels=10)


def test_a_plain_request_is_served_by_the_route_risk_fields_already_cached(monkeypatch):
    occ = grid_with()
    band = level_grid(occ, [(-1.0, -3.0, 1.0, 1.5)])
    pm = PlanningMap.from_grids(occ, band)
    goal = torch.tensor([[3.0, 0.0]])
    three = pm.distance_fields(goal, route_risk=True)  # what a model reading the route risk asks for
    monkeypatch.setattr(pm.layers, "goal_distance", lambda *a, **k: pytest.fail("computed the fields again"))
    two = pm.distance_fields(goal)  # the recovery step's request
    assert two.shape[1] == 2 and torch.equal(two, three[:, :2])
    assert torch.allclose(two, PlanningMap.from_grids(occ, band).distance_fields(goal))  # as computed alone


def test_a_map_cuts_only_the_channels_a_model_reads_and_refuses_ones_its_fields_cannot_give():
    occ = grid_with()
    band = [(-1.0, -3.0, 1.0, 1.5)]
    start, goal = torch.tensor([[-3.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    pm = PlanningMap.from_grids(occ, level_grid(occ, band))
    full = pm.patches(start, goal, 32, 6.4)
    five = pm.patches(start, goal, 32, 6.4, channels=5)
    assert five.shape == (1, 5, 32, 32) and torch.equal(five, full[:, :5])
    plain = PlanningMap.from_grids(occ, level_grid(occ, band), safe_distance=False)
    assert plain.patches(start, goal, 32, 6.4).shape[1] == 4
    with pytest.raises(ValueError, match="safe_distance=True"):
        plain.patches(start, goal, 32, 6.4, channels=5)


def test_sample_along_reads_each_rows_own_patch_at_plan_positions_and_has_a_gradient():
    patches = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    # Two patches, two plans each (K = 2), positions at cell centres of an 8-cell, 1.6 m patch.
    cell = lambda r, c: [(c + 0.5) * 0.2 - 0.8, (r + 0.5) * 0.2 - 0.8]  # noqa: E731
    xy = torch.tensor([[cell(0, 0), cell(7, 7)], [cell(3, 4), cell(4, 3)],
                       [cell(1, 2), cell(2, 1)], [cell(5, 6), cell(6, 5)]], requires_grad=True)
    out = sample_along(patches, xy, 1.6)
    assert out.shape == (4, 2, 3)
    expect = [[(0, 0, 0), (0, 7, 7)], [(0, 3, 4), (0, 4, 3)], [(1, 1, 2), (1, 2, 1)], [(1, 5, 6), (1, 6, 5)]]
    for m, row in enumerate(expect):
        for h, (b, r, c) in enumerate(row):
            assert torch.allclose(out[m, h], patches[b, :, r, c]), (m, h)
    out.sum().backward()
    assert torch.isfinite(xy.grad).all() and xy.grad.abs().sum() > 1.0  # the channels vary along x and y


def test_a_planning_map_caches_one_field_pair_per_goal_cell():
    pm = PlanningMap.from_grids(grid_with([(1.0, -3.0, 1.2, 2.0)]))
    goals = torch.tensor([[3.0, 0.0], [3.01, 0.01], [-3.0, 1.0]])  # the first two share a 0.1 m cell
    fields = pm.distance_fields(goals)
    assert fields.shape[:2] == (3, 2) and len(pm._fields) == 2  # plain and safe distance (no model here reads the route risk)
    assert torch.equal(fields[0], fields[1]) and not torch.equal(fields[0], fields[2])
    assert pm.to("cpu") is pm and pm.to(torch.device("cpu")) is pm  # already there: the cache goes with it


def test_the_planner_needs_a_map_for_a_map_model_and_refuses_one_otherwise():
    occ = grid_with()
    map_planner = RiskSensitivePlanner.from_config(map_config(), device="cpu")
    with pytest.raises(ValueError, match="map_input"):
        map_planner.plan([-2, 0, 0, 1, 0, 0], [2, 0])
    with pytest.raises(ValueError, match="safe_distance"):
        map_planner.plan([-2, 0, 0, 1, 0, 0], [2, 0], map_input=PlanningMap.from_grids(occ, safe_distance=False))
    result = map_planner.plan([-2, 0, 0, 1, 0, 0], [2, 0], seed=0, map_input=PlanningMap.from_grids(occ))
    assert result.candidates.shape == (4, 8, 6) and np.isfinite(result.action).all()
    per_map = RiskSensitivePlanner.from_config(tiny_config(), device="cpu")
    with pytest.raises(ValueError, match="per-map"):
        per_map.plan([-2, 0, 0, 1, 0, 0], [2, 0], map_input=PlanningMap.from_grids(occ))


def test_the_map_changes_the_plan_of_a_map_model():
    planner = RiskSensitivePlanner.from_config(map_config(), device="cpu", seed=3)
    state, goal = [-2, 0, 0, 1, 0, 0], [2, 0]
    a = planner.plan(state, goal, seed=0, map_input=PlanningMap.from_grids(grid_with()))
    b = planner.plan(state, goal, seed=0, map_input=PlanningMap.from_grids(grid_with([(-1.6, -3, -1.4, 3)])))
    assert not np.allclose(a.candidates, b.candidates)


def test_a_map_model_plans_alike_on_a_map_moved_elsewhere_with_the_robot_and_goal_moved_along():
    # The replan program cuts its patches from the map's origin and finds the goal's cell on the host: a map whose
    # origin is mishandled in either place plans differently once it is moved.
    cfg = map_config()
    cfg.model.denoiser_reads_map = True  # the denoiser's read along the plan as well as the critic's
    planner = RiskSensitivePlanner.from_config(cfg.validate(), device="cpu", seed=3)
    shift = np.array([5.0, -3.0])  # whole cells: the moved map's cells are the same cells
    boxes, risky = [(-1.6, -3.0, -1.4, 0.5)], [(0.0, -1.0, 1.0, 1.0)]
    here, there = grid_with(boxes), grid_with([(x0 + 5, y0 - 3, x1 + 5, y1 - 3) for x0, y0, x1, y1 in boxes],
                                              origin=(1.0, -6.0))
    risk_here = level_grid(here, risky)
    risk_there = level_grid(there, [(x0 + 5, y0 - 3, x1 + 5, y1 - 3) for x0, y0, x1, y1 in risky])
    state, goal = np.array([-2.03, 0.07, 0.0, 1.0, 0.0, 0.0]), np.array([2.51, 0.33])
    moved_state = state.copy()
    moved_state[:2] += shift
    here_map, m = PlanningMap.from_grids(here, risk_here), cfg.model
    encoded = []  # what the program handed the map encoder: its own cut of the patch, inside the replan
    hook = planner.map_encoder.register_forward_hook(lambda module, args, out: encoded.append(args[0].detach().clone()))
    a = planner.plan(state, goal, seed=0, map_input=here_map)
    hook.remove()
    at = {name: torch.tensor(xy[None], dtype=torch.float32) for name, xy in (("robot", state[:2]), ("goal", goal))}
    cut_here = here_map.patches(at["robot"], at["goal"], m.map_patch_cells, m.map_patch_m, channels=m.map_channels)
    torch.testing.assert_close(encoded[0], cut_here)  # the patch the map itself gives at the robot
    b = planner.plan(moved_state, goal + shift, seed=0, map_input=PlanningMap.from_grids(there, risk_there))
    empty = grid_with()
    nothing = planner.plan(state, goal, seed=0, map_input=PlanningMap.from_grids(empty, level_grid(empty, [])))
    # The map matters here (a patch read off the map, e.g. from a wrong origin, is all zeros on both maps alike).
    assert np.abs(nothing.candidates[..., :2] - a.candidates[..., :2]).max() > 0.5
    np.testing.assert_allclose(b.candidates[..., :2] - shift, a.candidates[..., :2], atol=1e-3)
    np.testing.assert_allclose(b.risk_values, a.risk_values, atol=1e-3)
    assert b.chosen_index == a.chosen_index


def test_a_warm_started_model_with_a_new_map_channel_computes_what_the_old_one_did():
    old_cfg, new_cfg = map_config(safe=False), map_config(safe=True)
    torch.manual_seed(0)
    old = build_networks(old_cfg.model)
    new = build_networks(new_cfg.model)
    load_grown(new, {name: old[name].state_dict() for name in NETWORK_NAMES}, "the 4-channel model")
    patches = torch.randn(3, 5, 16, 16)
    assert torch.allclose(old["map_encoder"](patches[:, :4]), new["map_encoder"](patches), atol=1e-6)
    window, context, noise, along = torch.randn(3, 8, 6), torch.randn(3, 10), torch.rand(3), torch.randn(3, 8, 5)
    assert torch.allclose(old["critic"](window, context, noise, along[..., :4]),
                          new["critic"](window, context, noise, along), atol=1e-5)


def test_a_warm_start_grows_from_five_channels_to_the_route_channels_exactly():
    old_cfg, new_cfg = map_config(safe=True), map_config(safe=True)
    new_cfg.model.map_route_channels = True
    assert (old_cfg.model.map_channels, new_cfg.model.map_channels) == (5, 7)
    torch.manual_seed(0)
    old, new = build_networks(old_cfg.model), build_networks(new_cfg.model)
    load_grown(new, {name: old[name].state_dict() for name in NETWORK_NAMES}, "the 5-channel model")
    patches, along = torch.randn(3, 7, 16, 16), torch.randn(3, 8, 7)
    window, context, noise = torch.randn(3, 8, 6), torch.randn(3, 10), torch.rand(3)
    assert torch.allclose(old["map_encoder"](patches), new["map_encoder"](patches), atol=1e-6)
    assert torch.allclose(old["critic"](window, context, noise, along), new["critic"](window, context, noise, along), atol=1e-5)
    # ... and the grown model does read the new channels once their weights move
    with torch.no_grad():
        new["map_encoder"].net[0].weight[:, 5:] += 1.0
    assert not torch.allclose(old["map_encoder"](patches), new["map_encoder"](patches), atol=1e-3)


def test_map_settings_are_validated():
    cfg = map_config(safe=False)
    cfg.model.map_route_channels = True
    with pytest.raises(ConfigError, match="map_route_channels"):
        cfg.validate()
    cfg = map_config()
    cfg.model.map_patch_cells = 12
    with pytest.raises(ConfigError, match="map_patch_cells"):
        cfg.validate()


def _map_episodes():
    episodes = synthetic_episodes(6)
    for i, e in enumerate(episodes):
        e["layout"] = f"m{i % 2}"
    return episodes


def test_a_map_conditioned_model_trains_saves_and_plans(tmp_path):
    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    maps = {"m0": (occ, level_grid(occ, [])), "m1": (occ, level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]))}
    summary = train(map_config(steps=10, checkpoint_every=100), _map_episodes(), tmp_path, seed=0, device="cpu",
                    progress=False, maps=maps)
    assert summary["steps"] == 10
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    assert planner.map_conditioned
    result = planner.plan([-2, 0, 0, 1, 0, 0], [2, 0], seed=0, map_input=PlanningMap.from_grids(*maps["m1"]))
    assert np.isfinite(result.action).all()
    with pytest.raises(ValueError, match="not among the dataset's maps"):
        train(map_config(steps=2), _map_episodes(), tmp_path / "x", device="cpu", progress=False, maps={"m0": maps["m0"]})
    with pytest.raises(ValueError, match="map-conditioned"):
        train(map_config(steps=2), _map_episodes(), tmp_path / "y", device="cpu", progress=False)


def test_the_controller_plans_a_map_model_on_its_costmap_and_risk_map_and_refuses_a_misfit_risk_map():
    from rs_diffuser_ros.control import Controller, ControllerSettings, StopReason

    planner = RiskSensitivePlanner.from_config(map_config(), device="cpu", seed=1)
    occ = grid_with([(1.0, -3.0, 1.2, -1.0)])
    c = Controller(planner, ControllerSettings(collision_check=False))
    c.set_goal((2.0, 0.0))
    c.on_costmap(occ, 0.0)
    c.on_risk_map(level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]), 0.0)
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 0.0)
    command = c.step(0.0, seed=0)
    assert command.stop is None and command.plan is not None
    # A risk map on another grid than the costmap's: the robot stops, saying why.
    c.on_risk_map(Grid(np.zeros((10, 10), np.int8), RES, -4.0, -3.0), 0.1)
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 0.1)
    command = c.step(0.1, seed=0)
    assert command.stop is StopReason.PLAN_FAILED and "geometry" in command.why
    assert (command.v, command.omega) == (0.0, 0.0)


def test_the_lookup_along_a_nan_plan_neither_crashes_nor_spreads_nan():
    # A diverged model's plans are NaN; grid_sample's CPU backward used to kill the process on them.
    patches = torch.rand(1, 4, 8, 8)
    xy = torch.full((2, 5, 2), float("nan"), requires_grad=True)
    out = sample_along(patches, xy, 1.6)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(xy.grad).all()


def test_a_republished_identical_map_keeps_what_the_controller_derived_from_it():
    from rs_diffuser_ros.control import Controller, ControllerSettings

    planner = RiskSensitivePlanner.from_config(map_config(), device="cpu", seed=1)
    c = Controller(planner, ControllerSettings(collision_check=False))
    occ, risk = grid_with([(1.0, -3.0, 1.2, -1.0)]), level_grid(grid_with(), [(-1.0, -0.5, 1.0, 0.5)])
    c.on_costmap(occ, 0.0)
    c.on_risk_map(risk, 0.0)
    c.set_goal((2.0, 0.0))
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 0.0)
    first = c.plan_request(c.check_inputs(0.0)[1]).map_input
    # Republished: new message objects with the same cells (what a map server sends every few seconds).
    c.on_costmap(Grid(occ.data.copy(), *occ[1:]), 1.0)
    c.on_risk_map(Grid(risk.data.copy(), *risk[1:]), 1.0)
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 1.0)
    assert c.plan_request(c.check_inputs(1.0)[1]).map_input is first
    assert c.grid_received_at == 1.0  # still a fresh costmap
    # A changed map is a new map.
    c.on_costmap(grid_with([(1.0, -3.0, 1.4, -1.0)]), 2.0)
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 2.0)
    assert c.plan_request(c.check_inputs(2.0)[1]).map_input is not first


def test_distances_at_reads_each_robot_s_own_goal_field_at_its_cell():
    # The progress check's lookup (every robot, every tick, one gather): robots with goals of their own, two sharing
    # one; a point off the map reads inf.
    occ = grid_with([(-1.0, -3.0, 1.0, 1.5)])
    pm = PlanningMap.from_grids(occ, level_grid(occ, [(-3.0, 1.5, -2.0, 2.5)]), passable_clearance_m=PASSABLE_CLEARANCE_M)
    goals = np.array([[3.0, 0.0], [-3.0, -2.0], [3.0, 0.0], [2.0, 2.5]], np.float32)
    xy = np.array([[-3.0, 0.0], [3.0, -2.0], [2.5, 0.0], [9.0, 0.0]], np.float32)
    got = pm.distances_at(goals, xy)
    assert got.shape == (4, 2) and np.isinf(got[3]).all()
    for i in range(3):
        field = pm.distance_fields(torch.as_tensor(goals[i:i + 1]))[0]
        row, col = pm.layers.cells_of(torch.as_tensor(xy[i])).tolist()
        np.testing.assert_allclose(got[i], field[:, row, col].numpy())
    assert got[0, 0] > got[2, 0] > 0  # farther round the wall from the goal than beside it
