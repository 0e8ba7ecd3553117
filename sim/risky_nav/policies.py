"""Scripted behaviour policies for a differential-drive robot: waypoint following by pure pursuit.

- `shortcut`: the shortest collision-free route to the goal, blind to risk.
- `detour`:   the shortest route that keeps out of every risky region.
- `noisy_*`:  the same with Gaussian noise on (v, omega).
- `random_*`: the same, but now and then a uniformly random action held for a few steps.
- `late_detour`: the short cut until 0.5-6 m (along its route) before it would enter a risky region, then
  the detour from there: keep-out episodes from the states on the short cut's approach.

A policy is called as `policy.reset(obs)` at the start of an episode (it plans its route to
the goal in obs[6:8]) and then `action = policy(obs)` every step. Observations follow the env
contract [x, y, sin_yaw, cos_yaw, v, omega, goal_x, goal_y].
"""
from __future__ import annotations

import math

import numpy as np

from risky_nav.layout import Layout
from risky_nav.map_analysis import densify, inside_boxes
from risky_nav.path_planner import GridPathPlanner

LOOKAHEAD = 0.5          # metres ahead on the route that pure pursuit steers towards
HEADING_GAIN = 2.5       # omega per radian of heading error
TURN_IN_PLACE = 1.0      # radians of heading error above which the robot stops to turn
GOAL_SLOWDOWN = 1.0      # m/s of speed allowed per metre from the goal (brake on arrival)


class WaypointPolicy:
    """Pure pursuit along an A* route; `avoid_risk` picks the detour instead of the short cut."""

    def __init__(self, layout: Layout, avoid_risk: bool):
        self.layout = layout
        self.name = "detour" if avoid_risk else "shortcut"
        self.planner = GridPathPlanner(layout, avoid_risk=avoid_risk)
        self.route = np.zeros((0, 2))
        self._segment = 0

    def reset(self, obs: np.ndarray) -> None:
        self.route = self.planner.plan((float(obs[0]), float(obs[1])), (float(obs[6]), float(obs[7])))
        self._segment = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if len(self.route) == 0:
            self.reset(obs)
        x, y = float(obs[0]), float(obs[1])
        yaw = math.atan2(float(obs[2]), float(obs[3]))
        target = self._lookahead_point(np.array([x, y]))
        error = _wrap(math.atan2(target[1] - y, target[0] - x) - yaw)
        lim = self.layout.robot
        omega = float(np.clip(HEADING_GAIN * error, -lim.max_omega, lim.max_omega))
        goal_distance = math.hypot(float(obs[6]) - x, float(obs[7]) - y)
        v = 0.0 if abs(error) > TURN_IN_PLACE else lim.max_v * math.cos(error)
        v = min(v, GOAL_SLOWDOWN * goal_distance + 0.1)
        return np.array([v, omega], dtype=np.float32)

    def _lookahead_point(self, position: np.ndarray) -> np.ndarray:
        """Point LOOKAHEAD metres beyond the robot's projection on the current route segment."""
        route = self.route
        # Advance to a later segment once the robot is closer to it (never go back).
        while self._segment < len(route) - 2:
            a, b = route[self._segment], route[self._segment + 1]
            c = route[self._segment + 2]
            if _distance_to_segment(position, b, c) <= _distance_to_segment(position, a, b):
                self._segment += 1
            else:
                break
        a, b = route[self._segment], route[min(self._segment + 1, len(route) - 1)]
        ab = b - a
        length = float(np.linalg.norm(ab))
        t = 0.0 if length == 0 else float(np.clip(np.dot(position - a, ab) / length ** 2, 0, 1))
        remaining = LOOKAHEAD
        point, seg = a + t * ab, self._segment
        while seg < len(route) - 1:
            to_end = float(np.linalg.norm(route[seg + 1] - point))
            if to_end >= remaining:
                return point + (route[seg + 1] - point) * (remaining / to_end)
            remaining -= to_end
            point, seg = route[seg + 1], seg + 1
        return route[-1]


class NoisyPolicy:
    """A base policy with Gaussian noise (std as a fraction of the limits) on its actions."""

    def __init__(self, base: WaypointPolicy, rng: np.random.Generator, noise: float = 0.3):
        self.base, self.rng, self.noise = base, rng, noise
        self.name = f"noisy_{base.name}"
        lim = base.layout.robot
        self._scale = np.array([lim.max_v, lim.max_omega])

    def reset(self, obs: np.ndarray) -> None:
        self.base.reset(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        action = self.base(obs) + self.noise * self._scale * self.rng.standard_normal(2)
        return np.clip(action, -self._scale, self._scale).astype(np.float32)


class PartlyRandomPolicy:
    """A base policy that, with probability `switch_prob` per step, takes a uniformly random
    action and holds it for 3-15 steps (covers states off the scripted routes)."""

    def __init__(self, base: WaypointPolicy, rng: np.random.Generator, switch_prob: float = 0.04):
        self.base, self.rng, self.switch_prob = base, rng, switch_prob
        self.name = f"random_{base.name}"
        lim = base.layout.robot
        self._scale = np.array([lim.max_v, lim.max_omega])
        self._held = np.zeros(2)
        self._hold_steps = 0

    def reset(self, obs: np.ndarray) -> None:
        self.base.reset(obs)
        self._hold_steps = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        action = self.base(obs)   # keep the base's route progress up to date
        if self._hold_steps == 0 and self.rng.random() < self.switch_prob:
            self._held = self.rng.uniform(-1, 1, 2) * self._scale
            self._hold_steps = int(self.rng.integers(3, 16))
        if self._hold_steps > 0:
            self._hold_steps -= 1
            return self._held.astype(np.float32)
        return action


class LateDetourPolicy:
    """The short cut until a random point SWITCH_BEFORE_M (drawn per episode, metres along its route) before the route
    first enters a risky region, then the detour planned from where the robot is. The other policies part at the
    start, so no episode stays out from a state on the short cut's approach; a planner that drifted there found no
    way round in its data (docs/method_choices.md, "Why, tick by tick"). A route that never enters risk is driven
    to the end as the short cut."""

    SWITCH_BEFORE_M = (0.5, 6.0)
    ROUTE_STEP_M = 0.05  # the route is checked at this spacing for where it first enters a region

    def __init__(self, layout: Layout, rng: np.random.Generator):
        self.layout, self.rng = layout, rng
        self.name = "late_detour"
        self.shortcut = WaypointPolicy(layout, avoid_risk=False)
        self.detour = WaypointPolicy(layout, avoid_risk=True)
        self.active = self.shortcut
        self.entry: np.ndarray | None = None  # where the short cut's route first enters a risky region
        self.turn: np.ndarray | None = None  # the point on that route where the robot turns for the detour
        self.turn_before_m = 0.0
        self.steps_before_turn: int | None = None  # how many steps it drove the short cut (None: not turned)
        self._steps = 0

    def reset(self, obs: np.ndarray) -> None:
        self.shortcut.reset(obs)
        self.active = self.shortcut
        self.steps_before_turn, self._steps = None, 0
        self.turn_before_m = float(self.rng.uniform(*self.SWITCH_BEFORE_M))
        points = densify(self.shortcut.route, self.ROUTE_STEP_M)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        inside = np.flatnonzero(inside_boxes(points, [r.box for r in self.layout.risky_regions]))
        self.entry = self.turn = None
        if len(inside):
            self.entry = points[inside[0]]
            self.turn = points[int(np.searchsorted(arc, max(arc[inside[0]] - self.turn_before_m, 0.0)))]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.active is self.shortcut and self.entry is not None:
            position = np.asarray(obs[:2], dtype=np.float64)
            if (np.linalg.norm(position - self.turn) <= LOOKAHEAD
                    or np.linalg.norm(position - self.entry) <= self.turn_before_m):
                self.detour.reset(obs)  # the detour from here
                self.active, self.steps_before_turn = self.detour, self._steps
        self._steps += 1
        return self.active(obs)


POLICY_NAMES = ("shortcut", "detour", "noisy_shortcut", "noisy_detour", "random_shortcut", "random_detour",
                "late_detour")


def make_policy(name: str, layout: Layout, rng: np.random.Generator | None = None):
    """Build a scripted policy by name (one of POLICY_NAMES)."""
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; choose from {POLICY_NAMES}")
    rng = rng if rng is not None else np.random.default_rng()
    if name == "late_detour":
        return LateDetourPolicy(layout, rng)
    base = WaypointPolicy(layout, avoid_risk=name.endswith("detour"))
    if name.startswith("noisy_"):
        return NoisyPolicy(base, rng)
    if name.startswith("random_"):
        return PartlyRandomPolicy(base, rng)
    return base


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _distance_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    denom = float(np.dot(ab, ab))
    t = 0.0 if denom == 0 else float(np.clip(np.dot(p - a, ab) / denom, 0, 1))
    return float(np.linalg.norm(p - (a + t * ab)))
