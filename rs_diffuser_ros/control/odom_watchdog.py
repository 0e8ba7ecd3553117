"""Decides whether the planner may act on the latest odometry: it must be valid, recent and in order.

ROS-free (times are plain seconds) so the rule is testable on its own. Freshness is
measured from the time a message *arrived*, not its header stamp: the stamp comes from
another clock (a simulator, another machine) and cannot tell that the stream stopped.
The stamp is still used to drop messages that are out of order (older than one already
used) or far in the past (a replayed log, a stuck publisher): those do not refresh the
watchdog, so a stream of them goes stale and stops the robot. A stamp of zero means
"unstamped" and skips those two checks. The arrival rate is counted so a flood can be named.
"""
from typing import Optional, Tuple

import numpy as np

# A stamp may lag the planner's clock by odom_timeout_s plus this much (clock skew, DDS delay)
# before the message counts as far in the past.
CLOCK_SKEW_ALLOWANCE_S = 1.0
# More odometry than this per second is a flood: still safe (only the latest is used) but worth a warning.
FLOOD_RATE_HZ = 200.0


class OdometryWatchdog:
    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._state: Optional[np.ndarray] = None
        self._received_at = -float("inf")
        self._invalid_reason: Optional[str] = None
        self._newest_stamp = 0.0
        self._window_start, self._window_count, self.rate_hz = -float("inf"), 0, 0.0

    def check_stamp(self, stamp_s: float, clock_now_s: float, now_s: float) -> Optional[str]:
        """Why a message stamped `stamp_s` must be dropped (planner clock at `clock_now_s`, arrival at
        `now_s`), or None. Once the stream has gone stale the order starts afresh: a restarted
        publisher whose clock began again is not locked out for ever."""
        if stamp_s == 0.0:
            return None
        if now_s - self._received_at > self.timeout_s:
            self._newest_stamp = 0.0
        if stamp_s < self._newest_stamp:
            return (f"odometry out of order: header.stamp {stamp_s:.3f} is {self._newest_stamp - stamp_s:.3f} s "
                    "older than one already used")
        age = clock_now_s - stamp_s
        if age > self.timeout_s + CLOCK_SKEW_ALLOWANCE_S:
            return f"odometry far in the past: header.stamp is {age:.2f} s behind the planner's clock"
        return None

    def count_arrival(self, now_s: float) -> None:
        """Count one arriving message; rate_hz is the count over the last whole second."""
        if now_s - self._window_start >= 1.0:
            self.rate_hz = self._window_count / max(now_s - self._window_start, 1.0)
            self._window_start, self._window_count = now_s, 0
        self._window_count += 1

    @property
    def flooded(self) -> bool:
        return self.rate_hz > FLOOD_RATE_HZ

    def accept(self, state: np.ndarray, now_s: float, stamp_s: float = 0.0) -> None:
        """A valid odometry state arrived at `now_s`."""
        self._state, self._received_at, self._invalid_reason = state, now_s, None
        self._newest_stamp = max(self._newest_stamp, stamp_s)

    def reject(self, reason: str, now_s: float) -> None:
        """An invalid odometry message arrived: the last good state is no longer trustworthy."""
        self._state, self._received_at, self._invalid_reason = None, now_s, reason

    def age(self, now_s: float) -> float:
        """Seconds since the last accepted odometry arrived (inf before the first)."""
        return now_s - self._received_at

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
