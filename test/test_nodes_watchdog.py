"""The odometry watchdog rule: act only on valid odometry that arrived within the time-out."""
import numpy as np

from rs_diffuser_ros.nodes.odom_watchdog import OdometryWatchdog

STATE = np.arange(6, dtype=np.float32)


def test_no_odometry_yet_means_no_state():
    state, why = OdometryWatchdog(0.5).current(now_s=100.0)
    assert state is None and "no odometry" in why


def test_fresh_odometry_is_used_and_goes_stale_after_the_timeout():
    dog = OdometryWatchdog(0.5)
    dog.accept(STATE, now_s=10.0)
    state, why = dog.current(now_s=10.49)
    assert state is STATE and why == ""
    state, why = dog.current(now_s=10.51)
    assert state is None and "stale" in why and "0.51" in why


def test_invalid_odometry_stops_at_once_until_a_valid_one_arrives():
    dog = OdometryWatchdog(0.5)
    dog.accept(STATE, now_s=10.0)
    dog.reject("odometry has non-finite values in pose.pose.position.x", now_s=10.1)
    state, why = dog.current(now_s=10.1)
    assert state is None and "pose.pose.position.x" in why
    dog.accept(STATE + 1, now_s=10.2)
    state, _ = dog.current(now_s=10.25)
    np.testing.assert_array_equal(state, STATE + 1)
