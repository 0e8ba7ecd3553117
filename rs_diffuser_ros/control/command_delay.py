"""How long after its tick a command takes effect: the planning time the robot drives on through.

On the robot a tick's command is published only when the replan is done (tens of milliseconds on a CPU), and until
then the robot keeps the last one. The node times each tick that planned and hands the duration over; the state
planned from is then moved on by this delay as well as by the odometry's age (odom_prediction.py), so the first
command suits where the robot will be when it arrives. The evaluation steps a paused simulation: it hands nothing
over and the delay stays 0.
"""
from __future__ import annotations

import math
import statistics
from collections import deque

WINDOW = 9  # ticks: the median of this many, so one slow tick (a first, compiling call) does not move it


class CommandDelay:
    def __init__(self):
        self._recent: deque[float] = deque(maxlen=WINDOW)

    def record(self, seconds: float) -> None:
        """One planning tick took `seconds` (wall clock); not finite or below 0 is ignored."""
        if math.isfinite(seconds) and seconds >= 0.0:
            self._recent.append(float(seconds))

    def estimate(self, limit_s: float) -> float:
        """The median of the last WINDOW planning ticks, at most `limit_s`; 0 until WINDOW were recorded."""
        if len(self._recent) < WINDOW:
            return 0.0
        return min(statistics.median(self._recent), limit_s)
