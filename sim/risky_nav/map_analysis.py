"""What a layout asks of a planner, measured with the scripted policies' own A* (path_planner.py):
the shortest route from the start region's centre to the goal region's centre, the shortest
route that keeps out of every risky region, and from those the map's kind and difficulty.

Kinds (what the generator builds and the dataset statistics group by):
- `tradeoff`:         the shortest route crosses a risky region and a risk-free route exists;
- `risk_off_route`:   the shortest route crosses no risky region;
- `risk_unavoidable`: the shortest route crosses risk and no risk-free route exists.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risky_nav.layout import Layout
from risky_nav.path_planner import GridPathPlanner

KINDS = ("tradeoff", "risk_off_route", "risk_unavoidable")
SAMPLE_SPACING = 0.05   # metres between the points at which a route is checked


@dataclass(frozen=True)
class MapAnalysis:
    shortest: np.ndarray             # waypoints [N, 2] of the risk-blind shortest route
    risk_free: np.ndarray | None     # waypoints of the shortest risk-free route, None if there is none
    shortest_length: float           # metres
    risk_free_length: float          # metres; inf when there is no risk-free route
    risky_length: float              # metres of the shortest route inside risky regions
    clearance_min: float             # distance from the shortest route to the nearest wall/obstacle
    clearance_mean: float

    @property
    def crosses_risk(self) -> bool:
        return self.risky_length > 0

    @property
    def kind(self) -> str:
        if not self.crosses_risk:
            return "risk_off_route"
        return "tradeoff" if self.risk_free is not None else "risk_unavoidable"

    @property
    def detour_ratio(self) -> float:
        """Shortest risk-free route / shortest route (1 when the shortest route is risk-free)."""
        return 1.0 if not self.crosses_risk else self.risk_free_length / self.shortest_length


class NoPathError(ValueError):
    """The layout has no collision-free route from the start region to the goal region."""


def densify(route: np.ndarray, spacing: float = SAMPLE_SPACING) -> np.ndarray:
    """Points [M, 2] along the polyline `route`, at most `spacing` apart, both ends included."""
    pieces = [route[:1]]
    for a, b in zip(route[:-1], route[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing)))
        pieces.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.concatenate(pieces)


def route_length(route: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(route, axis=0), axis=1).sum())


def inside_boxes(points: np.ndarray, boxes) -> np.ndarray:
    """Boolean [M]: point lies in (or on the edge of) any of `boxes`."""
    inside = np.zeros(len(points), dtype=bool)
    for b in boxes:
        inside |= ((points[:, 0] >= b.x_min) & (points[:, 0] <= b.x_max)
                   & (points[:, 1] >= b.y_min) & (points[:, 1] <= b.y_max))
    return inside


def distance_to_boxes(points: np.ndarray, boxes) -> np.ndarray:
    """Distance [M] from each point to the nearest of `boxes` (0 inside one); vectorised Box.distance."""
    lo = np.array([[b.x_min, b.y_min] for b in boxes])
    hi = np.array([[b.x_max, b.y_max] for b in boxes])
    gap = np.maximum(np.maximum(lo[None] - points[:, None], points[:, None] - hi[None]), 0.0)
    return np.sqrt((gap ** 2).sum(axis=2)).min(axis=1)


def analyse(layout: Layout, shortest: np.ndarray | None = None) -> MapAnalysis:
    """Routes between the region centres; raises NoPathError when not even a risk-blind one exists.

    `shortest` may be passed when already known (it does not depend on the risky regions).
    """
    start = (layout.start_region.center_x, layout.start_region.center_y)
    goal = (layout.goal_region.center_x, layout.goal_region.center_y)
    if shortest is None:
        shortest = GridPathPlanner(layout, avoid_risk=False).route(start, goal)
        if shortest is None:
            raise NoPathError(f"{layout.source}: no collision-free route from the start region's centre "
                              f"{start} to the goal region's centre {goal}")
    risky_boxes = [r.box for r in layout.risky_regions]
    # A start or goal inside a risky region cannot be reached without risk, whatever A* says
    # (the planner moves such an end point to the nearest cell outside the region).
    ends_in_risk = inside_boxes(np.array([start, goal]), risky_boxes).any()
    risk_free = None if ends_in_risk else GridPathPlanner(layout, avoid_risk=True).route(start, goal)
    dense = densify(shortest)
    in_risk = inside_boxes(dense, risky_boxes)
    step = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    clearance = distance_to_boxes(dense, layout.solid_boxes())
    return MapAnalysis(
        shortest=shortest, risk_free=risk_free,
        shortest_length=route_length(shortest),
        risk_free_length=route_length(risk_free) if risk_free is not None else float("inf"),
        risky_length=float(step[in_risk[1:] | in_risk[:-1]].sum()),
        clearance_min=float(clearance.min()), clearance_mean=float(clearance.mean()))
