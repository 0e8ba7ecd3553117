"""Decides whether the planner may act on the latest odometry: it must be valid and recent.

ROS-free (times are plain seconds) so the rule is testable on its own. Freshness is
measured from the time a message *arrived*, not its header stamp: the stamp comes from
another clock (a simulator, another machine) and cannot tell that the stream stopped.
"""
from typing import Optional, Tuple

import numpy as np


class OdometryWatchdog:
    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._state: Optional[np.ndarray] = None
        self._received_at = -float("inf")
        self._invalid_reason: Optional[str] = None

    def accept(self, state: np.ndarray, now_s: float) -> None:
        """A valid odometry state arrived at `now_s`."""
        self._state, self._received_at, self._invalid_reason = state, now_s, None

    def reject(self, reason: str, now_s: float) -> None:
        """An invalid odometry message arrived: the last good state is no longer trustworthy."""
        self._state, self._received_at, self._invalid_reason = None, now_s, reason

    def current(self, now_s: float) -> Tuple[Optional[np.ndarray], str]:
        """(state, "") when the robot may move, else (None, why not)."""
        if self._invalid_reason is not None:
            return None, f"last odometry was invalid: {self._invalid_reason}"
        if self._state is None:
            return None, "no odometry received yet"
        age = now_s - self._received_at
        if age > self.timeout_s:
            return None, f"odometry is stale: last message {age:.2f} s ago (odom_timeout_s = {self.timeout_s:g})"
        return self._state, ""
