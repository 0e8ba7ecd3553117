"""Is the robot getting anywhere? As Nav2's progress checker, but progress is measured towards the goal: within
`timeout_s` the robot must come `radius_m` closer to it than it was when the window began, along either way it may
take (the plain goal distance along free space, the risk-weighted one the recovery follows, or, where the planner
offers route candidates, either way they follow: controller._goal_distances); otherwise it is stuck, and the
controller hands the tick to the recovery (recovery.py) instead of the model until it has. Where the robot's cell
reads no distance (too close to a wall, or no map to read), moving `radius_m` from where the window began counts, as
in Nav2. The recovery drives for one window at most: where its own steps get nowhere either, the model plans again
for the next (the distances to beat stay), and so on, rather than the recovery holding the robot to the time limit.

Traced (the general model, averse:0.1):
- test map gen1000009: in a pocket by a block, the only candidates the collision check admitted were one way's route
  followers, whose first command turned the robot in place left and right on alternate ticks. It stood there until
  the time limit. The turn commitment (turn_commitment.py) cannot help when nothing else is admitted.
- fresh map gen2000004 (20 of 20 episodes at the time limit, no collision, no stop): the robot drove between two
  points 2 m apart for 60 s, down into a dead end towards the goal and back, every tick a plan the critic scored well.
  It moved all the time, so a check on position alone never fired; it never came closer to the goal.
"""
from __future__ import annotations

import math

import numpy as np


class ProgressChecker:
    def __init__(self):
        self.best: np.ndarray | None = None  # the goal distances to beat (the window's start, or its last progress)
        self.anchor: tuple[float, float] = (0.0, 0.0)  # where the robot stood then
        self.since = 0.0

    def reset(self) -> None:
        self.best = None

    def stuck(self, xy, distances, now_s: float, radius_m: float, timeout_s: float) -> bool:
        """True when the robot at xy, at goal distances [F] (inf where unknown), has not come radius_m closer along any
        of them (nor, with none known, moved radius_m) for timeout_s (0: never), until it has or timeout_s more have
        passed: then the model gets a window again, as Nav2's controller is retried after a recovery behaviour."""
        x, y = float(xy[0]), float(xy[1])
        distances = np.asarray(distances, dtype=np.float64)
        if timeout_s <= 0 or self.best is None or self.best.shape != distances.shape:
            self._progress(x, y, distances, now_s)
            return False
        known = np.isfinite(distances) & np.isfinite(self.best)
        if known.any():
            progressed = bool((distances[known] <= self.best[known] - radius_m).any())
        else:
            progressed = math.hypot(x - self.anchor[0], y - self.anchor[1]) >= radius_m
        if progressed:
            self._progress(x, y, np.fmin(self.best, distances), now_s)
            return False
        if not np.isfinite(self.best).all():  # a distance read for the first time in this window becomes one to beat
            self.best = np.where(np.isfinite(self.best), self.best, distances)
        if now_s - self.since >= 2 * timeout_s:  # the recovery had its window too: the model plans again, for a
            self.anchor, self.since = (x, y), now_s  # window of its own, against the same distances to beat
            return False
        return now_s - self.since >= timeout_s

    def _progress(self, x: float, y: float, distances: np.ndarray, now_s: float) -> None:
        self.best, self.anchor, self.since = distances, (x, y), now_s
