"""Is the robot getting anywhere? Nav2's SimpleProgressChecker: the robot must move `radius_m` from where it stood
when the current window began, within `timeout_s`; otherwise it is stuck, and the controller hands the tick to the
recovery (recovery.py) instead of the model, until the robot has moved that far.

Traced on test map gen1000009 (the general model, averse:0.1): in a pocket by a block, the only candidates the
collision check admitted were one way's route followers, whose first command turned the robot in place left and
right on alternate ticks (what their rollouts from the robot's own turn rate allowed). It stood there until the time
limit, 65 s. The turn commitment (turn_commitment.py) cannot help when nothing else is admitted; a progress check
catches any such standstill, whatever its cause.
"""
from __future__ import annotations

import math


class ProgressChecker:
    def __init__(self):
        self.anchor: tuple[float, float] | None = None  # where the robot stood when the window began
        self.since = 0.0

    def reset(self) -> None:
        self.anchor = None

    def stuck(self, xy, now_s: float, radius_m: float, timeout_s: float) -> bool:
        """True when the robot at xy has stayed within radius_m of the window's start for timeout_s (0: never)."""
        x, y = float(xy[0]), float(xy[1])
        if timeout_s <= 0 or self.anchor is None or math.hypot(x - self.anchor[0], y - self.anchor[1]) >= radius_m:
            self.anchor, self.since = (x, y), now_s
            return False
        return now_s - self.since >= timeout_s
