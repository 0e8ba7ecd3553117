"""Grid A* for the scripted behaviour policies: shortest collision-free route, optionally
keeping out of the risky regions, shortened to a few waypoints by line-of-sight pulling.

This is the data-generating "expert", not the method: the short cut is A* that ignores risk,
the detour is A* that treats risky regions as walls. Works on any layout and any start/goal.
"""
from __future__ import annotations

import heapq
import math

import numpy as np

from risky_nav.layout import Box, Layout
from risky_nav.occupancy import rasterize_boxes

PLAN_RESOLUTION = 0.1      # metres per planning cell
CLEARANCE_MARGIN = 0.05    # extra distance kept from walls beyond the robot radius
RISK_MARGIN = 0.15         # distance kept from risky regions by the risk-avoiding route

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _inflate(box: Box, margin: float) -> Box:
    return Box(box.center_x, box.center_y, box.size_x + 2 * margin, box.size_y + 2 * margin)


class GridPathPlanner:
    """A* over a layout's free space; `avoid_risk` also forbids the (inflated) risky regions."""

    def __init__(self, layout: Layout, avoid_risk: bool):
        self.layout = layout
        self.avoid_risk = avoid_risk
        res = PLAN_RESOLUTION
        wall_margin = layout.robot.radius + CLEARANCE_MARGIN
        blocked = rasterize_boxes([_inflate(b, wall_margin) for b in layout.solid_boxes()],
                                  layout.width, layout.height, res)
        self.risky = rasterize_boxes([_inflate(r.box, RISK_MARGIN) for r in layout.risky_regions],
                                     layout.width, layout.height, res)
        self.blocked_walls = blocked
        self.blocked = blocked | self.risky if avoid_risk else blocked

    def plan(self, start: tuple[float, float], goal: tuple[float, float]) -> np.ndarray:
        """Waypoints [N, 2] from start to goal (start and goal included).

        Falls back to the risk-blind route when avoiding risk leaves no path, and to the
        straight line when even that fails (e.g. the goal sits inside an obstacle's margin).
        """
        for blocked in ([self.blocked, self.blocked_walls] if self.avoid_risk else [self.blocked_walls]):
            route = self._route(start, goal, blocked)
            if route is not None:
                return route
        return np.array([start, goal], dtype=np.float64)

    def route(self, start: tuple[float, float], goal: tuple[float, float]) -> np.ndarray | None:
        """Like `plan`, but None when this planner's constraints leave no path (no fallback):
        what the map generator uses to tell whether a risk-free way exists."""
        return self._route(start, goal, self.blocked)

    # ------------------------------------------------------------------ internals
    def _route(self, start, goal, blocked: np.ndarray) -> np.ndarray | None:
        cells = self._astar(self._free_cell_near(start, blocked), self._free_cell_near(goal, blocked), blocked)
        if cells is None:
            return None
        points = [self._center(c) for c in self._pull_string(cells, blocked)]
        return np.array([start, *points[1:-1], goal], dtype=np.float64)

    def _cell(self, point) -> tuple[int, int]:
        rows, cols = self.blocked.shape
        r = min(max(int(point[1] / PLAN_RESOLUTION), 0), rows - 1)
        c = min(max(int(point[0] / PLAN_RESOLUTION), 0), cols - 1)
        return r, c

    def _center(self, cell) -> tuple[float, float]:
        return ((cell[1] + 0.5) * PLAN_RESOLUTION, (cell[0] + 0.5) * PLAN_RESOLUTION)

    def _free_cell_near(self, point, blocked: np.ndarray) -> tuple[int, int]:
        """The point's cell, or the nearest unblocked one (a start may sit in the margin)."""
        r0, c0 = self._cell(point)
        if not blocked[r0, c0]:
            return r0, c0
        free = np.argwhere(~blocked)
        if len(free) == 0:
            return r0, c0
        nearest = free[np.argmin((free[:, 0] - r0) ** 2 + (free[:, 1] - c0) ** 2)]
        return int(nearest[0]), int(nearest[1])

    def _astar(self, start, goal, blocked: np.ndarray):
        """8-connected A* with the octile heuristic, on a flat grid padded by one blocked cell
        (plain Python lists: numpy scalar indexing would dominate the run time)."""
        rows, cols = blocked.shape
        if blocked[start] or blocked[goal]:
            return None
        width = cols + 2
        padded = np.ones((rows + 2, width), dtype=bool)
        padded[1:-1, 1:-1] = blocked
        wall = padded.ravel().tolist()
        s, g_idx = (start[0] + 1) * width + start[1] + 1, (goal[0] + 1) * width + goal[1] + 1
        gr, gc = divmod(g_idx, width)
        # Octile distance to the goal of every cell, computed once (it dominated the inner loop).
        dr, dc = np.abs(np.arange(rows + 2) - gr)[:, None], np.abs(np.arange(width) - gc)[None, :]
        h = (np.maximum(dr, dc) + 0.41421356237309515 * np.minimum(dr, dc)).ravel().tolist()
        steps = [(dr * width + dc, 1.4142135623730951 if dr and dc else 1.0) for dr, dc in _NEIGHBOURS]
        cost = [math.inf] * len(wall)
        parent = [-1] * len(wall)
        cost[s] = 0.0
        heap = [(0.0, s)]
        while heap:
            f, cell = heapq.heappop(heap)
            if f > cost[cell] + h[cell]:
                continue          # stale entry: the cell was expanded at its lower cost already
            if cell == g_idx:
                path = []
                while cell != -1:
                    r, c = divmod(cell, width)
                    path.append((r - 1, c - 1))
                    cell = parent[cell]
                return path[::-1]
            base = cost[cell]
            for offset, step in steps:
                nxt = cell + offset
                if wall[nxt]:
                    continue
                new_cost = base + step
                if new_cost < cost[nxt]:
                    cost[nxt] = new_cost
                    parent[nxt] = cell
                    heapq.heappush(heap, (new_cost + h[nxt], nxt))
        return None

    def _pull_string(self, cells: list, blocked: np.ndarray) -> list:
        """Keep only the cells needed so that consecutive kept cells see each other: from each kept
        cell, jump to the furthest later cell in sight. Sight lines are sampled as
        np.linspace(a, b, n) with n = 2 * (Chebyshev distance) + 2, rounded to cells, and checked
        for every candidate at once."""
        points = np.asarray(cells, dtype=np.float64)
        kept = [cells[0]]
        i = 0
        while i < len(cells) - 1:
            j = i + 1
            if i + 2 < len(cells):
                a, ends = points[i], points[i + 2:]
                n = (np.abs(ends - a).max(axis=1) * 2).astype(int) + 2
                k = np.arange(n.max(), dtype=np.float64)
                samples = k[None, :, None] * ((ends - a) / (n - 1)[:, None])[:, None, :] + a
                past_end = k[None, :] >= (n - 1)[:, None]
                samples[past_end] = np.broadcast_to(ends[:, None, :], samples.shape)[past_end]
                rc = np.rint(samples).astype(int)
                visible = ~blocked[rc[..., 0], rc[..., 1]].any(axis=1)
                if visible.any():
                    j = i + 2 + int(np.flatnonzero(visible)[-1])
            kept.append(cells[j])
            i = j
        return kept
