"""The final-approach speed limit: full speed far out, proportional near the goal, floored."""
import pytest

from rs_diffuser_ros.control.goal_approach import approach_speed_limit


def test_full_speed_beyond_the_slowdown_distance():
    assert approach_speed_limit(5.0, 1.0, 0.6, 0.1) == 1.0
    assert approach_speed_limit(0.6, 1.0, 0.6, 0.1) == 1.0


def test_proportional_to_the_distance_inside_it():
    assert approach_speed_limit(0.3, 1.0, 0.6, 0.1) == pytest.approx(0.5)
    assert approach_speed_limit(0.45, 0.8, 0.6, 0.1) == pytest.approx(0.6)


def test_never_below_the_floor_nor_above_the_maximum():
    assert approach_speed_limit(0.01, 1.0, 0.6, 0.1) == pytest.approx(0.1)
    assert approach_speed_limit(0.01, 0.05, 0.6, 0.1) == pytest.approx(0.05)  # a floor above the max: the max


def test_zero_slowdown_distance_turns_it_off():
    assert approach_speed_limit(0.01, 1.0, 0.0, 0.1) == 1.0
