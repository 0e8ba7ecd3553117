"""The odometry watchdog rule: act only on valid odometry that arrived within the time-out."""
import numpy as np

from rs_diffuser_ros.control.odom_watchdog import OdometryWatchdog

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


def test_out_of_order_stamps_are_dropped_and_unstamped_ones_always_pass():
    dog = OdometryWatchdog(0.5)
    assert dog.check_stamp(100.0, clock_now_s=100.1, now_s=10.0) is None
    dog.accept(STATE, now_s=10.0, stamp_s=100.0)
    why = dog.check_stamp(99.9, clock_now_s=100.2, now_s=10.1)
    assert why is not None and "out of order" in why
    assert dog.check_stamp(0.0, clock_now_s=100.2, now_s=10.1) is None
    assert dog.check_stamp(100.05, clock_now_s=100.2, now_s=10.1) is None


def test_stamps_far_behind_the_clock_are_dropped():
    dog = OdometryWatchdog(0.5)
    why = dog.check_stamp(50.0, clock_now_s=100.0, now_s=10.0)
    assert why is not None and "far in the past" in why and "50.00 s" in why
    assert dog.check_stamp(99.0, clock_now_s=100.0, now_s=10.0) is None  # within timeout + skew allowance


def test_order_starts_afresh_once_the_stream_went_stale():
    # A restarted publisher whose clock began again (sim time from 0) is not locked out for ever.
    dog = OdometryWatchdog(0.5)
    dog.accept(STATE, now_s=10.0, stamp_s=500.0)
    assert "out of order" in dog.check_stamp(1.0, clock_now_s=1.2, now_s=10.2)
    assert dog.check_stamp(1.0, clock_now_s=1.2, now_s=11.0) is None


def test_arrival_rate_names_a_flood():
    dog = OdometryWatchdog(0.5)
    for i in range(2001):
        dog.count_arrival(now_s=i * 0.001)  # 1 kHz for 2 s
    assert dog.flooded and 900 <= dog.rate_hz <= 1100
    for i in range(30):
        dog.count_arrival(now_s=2.0 + (i + 1) * 0.1)  # then 10 Hz
    assert not dog.flooded and dog.rate_hz < 20
