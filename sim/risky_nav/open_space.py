"""Where the robot is so far from every wall and obstacle that it cannot touch one soon.

The env asks PyBullet for the robot's contact points after every physics substep; that query
and its bookkeeping cost more than the physics itself. From a point whose clearance exceeds
the robot's radius plus the farthest it can drive in one control step plus a margin
(several times Bullet's 0.02 m contact-breaking threshold), no contact point can exist during
that control step, so the query would return nothing and can be skipped without changing any
result. A lookup grid makes the test a couple of integer operations.
"""
from __future__ import annotations

import math

import numpy as np

from risky_nav.layout import Layout

CONTACT_MARGIN = 0.1   # metres beyond radius + travel; contact points appear within ~0.02 m
CELL = 0.1             # metres per lookup cell


class OpenSpace:
    """`is_open(x, y)`: True only if a robot centred anywhere in (x, y)'s cell can drive for
    `travel` metres without coming within CONTACT_MARGIN of a wall or obstacle."""

    def __init__(self, layout: Layout, travel: float):
        need = layout.robot.radius + travel + CONTACT_MARGIN
        self._cols = math.ceil(layout.width / CELL)
        self._rows = math.ceil(layout.height / CELL)
        xs = (np.arange(self._cols) + 0.5) * CELL
        ys = (np.arange(self._rows) + 0.5) * CELL
        clearance = np.full((self._rows, self._cols), np.inf)
        for box in layout.solid_boxes():
            dx = np.maximum(np.maximum(box.x_min - xs, 0.0), xs - box.x_max)
            dy = np.maximum(np.maximum(box.y_min - ys, 0.0), ys - box.y_max)
            clearance = np.minimum(clearance, np.hypot(dy[:, None], dx[None, :]))
        # Clearance changes by at most the distance moved: every point of a cell is within
        # half a diagonal of its centre.
        self._open = (clearance - CELL * math.sqrt(0.5) > need).ravel().tolist()

    def is_open(self, x: float, y: float) -> bool:
        if not (0.0 <= x and 0.0 <= y):          # also False for NaN
            return False
        col, row = int(x / CELL), int(y / CELL)
        return col < self._cols and row < self._rows and self._open[row * self._cols + col]
