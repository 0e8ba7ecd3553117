"""The progress check counts the way round risk as progress (controller._goal_distances): a robot following the route
candidates' way round moves away from the goal along the plain and the risk-weighted distance where that way is much
the longer one. On test map gen1000045 (its way round 15.4 m against a 9.8 m short cut) the check fired there and the
recovery, stepping down the risk-weighted distance, drove the robot back towards the short cut: 339 steps where the
way round takes about 180.

The map here: a wall between start and goal with a gap at each end, a narrow risky strip across the near gap (the
short cut, 4 m) and the way round through the far gap (about 11 m). The shipped general model plans every tick; the
robot's odometry is driven up the way round at 1 m/s, whatever it plans.
"""
import numpy as np
import pytest
import torch
from test_core_map_input import grid_with, level_grid

from rs_diffuser_ros.control.controller import Controller, StopReason
from rs_diffuser_ros.control.settings import ControllerSettings
from rs_diffuser_ros.core.map_input import PASSABLE_CLEARANCE_M, PlanningMap
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.shipped import resolve_model

COSTMAP = grid_with([(-0.1, -1.6, 0.1, 1.8)])  # 8 x 6 m, origin (-4, -3): the wall x = 0, gaps below -1.6 and above 1.8
RISK = level_grid(COSTMAP, [(-0.3, -3.0, 0.3, -1.6)])  # across the near gap: 0.6 m of risk on the short cut
START, GOAL = (-2.0, -2.3), np.array([2.0, -2.3], np.float32)
MARGIN_M = 0.2  # the route candidates' default risk margin


@pytest.fixture(scope="module")
def planner():
    torch.set_num_threads(1)
    return RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")


def test_on_this_map_the_way_round_goes_uphill_on_the_plain_and_risk_weighted_distances():
    # What makes the map a case: up the way round, farther along the first two, nearer along the third.
    pm = PlanningMap.from_grids(COSTMAP, RISK, passable_clearance_m=PASSABLE_CLEARANCE_M)
    d = pm.distances_at(np.stack([GOAL, GOAL]), np.array([START, (-2.0, 0.5)], np.float32), MARGIN_M)
    assert d.shape == (2, 4)
    assert d[1, 0] > d[0, 0] + 1 and d[1, 1] > d[0, 1] + 1 and d[1, 2] < d[0, 2] - 2


def drive_up_the_way_round(planner, **settings) -> list:
    c = Controller(planner, ControllerSettings(seed=0, alpha=0.1, progress_radius_m=0.25, progress_timeout_s=1.0,
                                               **settings))
    c.set_goal(GOAL)
    stops = []
    for tick in range(20):
        t = 0.1 * tick
        c.on_costmap(COSTMAP, t)
        c.on_risk_map(RISK, t)
        c.on_odometry(np.array([START[0], START[1] + 0.1 * tick, 1.0, 0.0, 1.0, 0.0], np.float32), t)  # north, 1 m/s
        stops.append(c.step(t).stop)
    return stops


def test_a_robot_following_the_way_round_is_making_progress(planner):
    assert planner.own_planner_config.route_candidates > 0  # the model's own (another test reconfigures the planner)
    assert drive_up_the_way_round(planner) == [None] * 20


def test_without_route_candidates_the_same_drive_counts_as_stuck(planner):
    # No way round is offered, so none counts: the check fires after its 1 s as it did before.
    stops = drive_up_the_way_round(planner, route_candidates=0)
    assert stops[:10] == [None] * 10 and StopReason.NO_PROGRESS in stops[10:]


def test_a_map_that_cannot_be_read_gives_as_many_distances_as_one_that_can(planner, monkeypatch):
    # The checker restarts its window whenever the width changes: a read failing every other tick must not do that.
    from rs_diffuser_ros.control.controller import _goal_distances
    c = Controller(planner, ControllerSettings(seed=0, alpha=0.1, progress_timeout_s=1.0))
    c.set_goal(GOAL)
    c.on_costmap(COSTMAP, 0.0)
    c.on_risk_map(RISK, 0.0)
    c.on_odometry(np.array([START[0], START[1], 1.0, 0.0, 0.0, 0.0], np.float32), 0.0)
    stop, state = c.check_inputs(0.0)
    assert stop is None
    request = c.plan_request(state, c.plan_maps())
    read = _goal_distances([c], [(0, None, request)])[0]

    def unreadable(*args, **kwargs):
        raise RuntimeError("no map to read")
    monkeypatch.setattr(PlanningMap, "distances_at", unreadable)
    failed = _goal_distances([c], [(0, None, request)])[0]
    assert read.shape == failed.shape == (4,)
    assert np.isfinite(read).all() and np.isinf(failed).all()
