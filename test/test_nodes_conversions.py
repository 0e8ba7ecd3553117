"""Message conversions between ROS 2 messages and the core/sim arrays (no DDS needed)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from visualization_msgs.msg import Marker

from rs_diffuser_ros.nodes import conversions as conv
from rs_diffuser_ros.nodes.risk_colors import normalise_risk, risk_rgb

STAMP = Time(sec=12, nanosec=5)


def odom(x=1.0, y=-2.0, yaw=0.7, v=0.3, omega=-0.2, frame="odom"):
    return conv.state_to_odometry([x, y, math.sin(yaw), math.cos(yaw), v, omega], STAMP, frame, "base_link")


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5, math.pi - 1e-6, 3.0])
def test_odometry_round_trips_to_state(yaw):
    state = conv.odometry_to_state(odom(yaw=yaw), expected_frame="odom")
    assert state.dtype == np.float32 and state.shape == (6,)
    np.testing.assert_allclose(state, [1.0, -2.0, math.sin(yaw), math.cos(yaw), 0.3, -0.2], atol=1e-6)


def test_yaw_comes_from_the_quaternion_not_its_raw_components():
    msg = Odometry()
    # 90 degrees about z: (0, 0, sin 45, cos 45).
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sqrt(0.5), math.sqrt(0.5)
    state = conv.odometry_to_state(msg)
    np.testing.assert_allclose(state[2:4], [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("field,value", [
    ("pose.pose.position.x", float("nan")),
    ("pose.pose.position.y", float("inf")),
    ("twist.twist.linear.x", float("nan")),
    ("twist.twist.angular.z", -float("inf")),
    ("pose.pose.orientation.w", float("nan")),
])
def test_non_finite_odometry_is_rejected_naming_the_field(field, value):
    msg = odom()
    target = msg
    *parents, leaf = field.split(".")
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)
    with pytest.raises(conv.InvalidOdometry, match=field.replace(".", r"\.")):
        conv.odometry_to_state(msg)


def test_non_unit_quaternion_is_rejected():
    msg = odom()
    msg.pose.pose.orientation.w *= 2.0
    with pytest.raises(conv.InvalidOdometry, match="unit quaternion"):
        conv.odometry_to_state(msg)


def test_all_zero_quaternion_is_rejected():
    msg = Odometry()
    msg.pose.pose.orientation.w = 0.0
    with pytest.raises(conv.InvalidOdometry, match="unit quaternion"):
        conv.odometry_to_state(msg)


def test_odometry_in_another_frame_is_rejected():
    with pytest.raises(conv.InvalidOdometry, match="'map'"):
        conv.odometry_to_state(odom(frame="map"), expected_frame="odom")


def test_goal_pose_and_its_frame():
    goal = conv.pose_to_goal(conv.goal_to_pose([3.5, -1.25], STAMP, "odom"), expected_frame="odom")
    np.testing.assert_allclose(goal, [3.5, -1.25])
    with pytest.raises(ValueError, match="frame_id"):
        conv.pose_to_goal(conv.goal_to_pose([1, 2], STAMP, "map"), expected_frame="odom")
    bad = PoseStamped()
    bad.pose.position.x = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        conv.pose_to_goal(bad)


def test_occupancy_grid_round_trip_keeps_row_y_column_x():
    data = np.zeros((3, 5), dtype=np.int8)
    data[2, 4] = 100  # top-right cell: y row 2, x column 4
    data[0, 1] = -1
    msg = conv.grid_to_occupancy_msg(data, 0.25, -1.0, -0.5, STAMP, "odom")
    assert (msg.info.width, msg.info.height) == (5, 3)
    assert msg.data[2 * 5 + 4] == 100  # row-major, as nav_msgs/OccupancyGrid defines
    back, resolution, x0, y0 = conv.occupancy_msg_to_grid(msg)
    np.testing.assert_array_equal(back, data)
    assert (resolution, x0, y0) == (0.25, -1.0, -0.5)
    grid = conv.costmap_msg_to_grid(msg, expected_frame="odom")
    np.testing.assert_array_equal(grid.data, data)
    assert (grid.resolution, grid.origin_x, grid.origin_y) == (0.25, -1.0, -0.5)


def test_inconsistent_occupancy_grid_is_rejected():
    msg = conv.grid_to_occupancy_msg(np.zeros((3, 5)), 0.25, 0.0, 0.0, STAMP, "odom")
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="14 cells"):
        conv.occupancy_msg_to_grid(msg)
    msg = conv.grid_to_occupancy_msg(np.zeros((3, 5)), 0.25, 0.0, 0.0, STAMP, "odom")
    msg.info.resolution = 0.0
    with pytest.raises(ValueError, match="resolution"):
        conv.occupancy_msg_to_grid(msg)


def test_plan_to_path_carries_positions_and_headings():
    plan = np.array([[0, 0, 0, 1, 0, 0], [1, 0.5, 1, 0, 0.2, 0]], dtype=np.float32)
    path = conv.plan_to_path(plan, STAMP, "odom")
    assert path.header.frame_id == "odom" and len(path.poses) == 2
    np.testing.assert_allclose(conv.path_to_xy(path), plan[:, :2])
    assert conv.yaw_from_quaternion(path.poses[1].pose.orientation) == pytest.approx(math.pi / 2)


def test_candidate_markers_colour_by_risk_and_keep_values():
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(4, 6, 6))
    risk = np.array([-5.0, 2.0, 0.5, -1.0])
    msg = conv.candidates_to_markers(candidates, risk, chosen_index=1, stamp=STAMP, frame_id="odom")
    assert msg.markers[0].action == Marker.DELETEALL
    lines = msg.markers[1:]
    assert [m.id for m in lines] == [0, 1, 2, 3]
    worst, best = lines[0].color, lines[1].color
    assert worst.r > worst.g and best.g > best.r  # red = worst, green = best
    assert lines[1].scale.x > lines[0].scale.x  # the chosen plan stands out
    xy, values = conv.candidate_markers_to_arrays(msg)
    np.testing.assert_allclose(values, risk)
    np.testing.assert_allclose(xy[2], candidates[2, :, :2])


def test_risk_colours_are_ordered_and_degenerate_safe():
    np.testing.assert_allclose(normalise_risk([3.0, 1.0, 2.0]), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(normalise_risk([2.0, 2.0]), [0.5, 0.5])
    rgb = risk_rgb(np.linspace(0, 1, 5))
    assert np.all(np.diff(rgb[:, 1] - rgb[:, 0]) > 0)  # steadily from red towards green


def test_plan_result_to_risk_plan():
    result = SimpleNamespace(risk_values=np.array([-3.0, -1.5, -2.0]), chosen_index=1, expected_return=4.0,
                             quantiles=np.array([-9.0, 0.0, 5.0]), latency_ms=42.0)
    msg = conv.plan_result_to_risk_plan(result, alpha=0.05, risk_mode="averse", stamp=STAMP, frame_id="odom")
    assert msg.alpha == pytest.approx(0.05) and msg.risk_mode == "averse"
    assert msg.risk_value == pytest.approx(-1.5) and msg.num_candidates == 3
    assert list(msg.return_quantiles) == [-9.0, 0.0, 5.0] and msg.planning_latency_ms == pytest.approx(42.0)


def test_twist_round_trip_and_non_finite_refused():
    twist = conv.command_to_twist(0.5, -1.0)
    assert (twist.linear.x, twist.angular.z) == (0.5, -1.0)
    with pytest.raises(ValueError, match="not finite"):
        conv.command_to_twist(float("nan"), 0.0)
    np.testing.assert_allclose(conv.twist_to_action(twist), [0.5, -1.0])


def test_costmap_msg_to_grid_checks_frame_values_and_origin():
    msg = conv.grid_to_occupancy_msg(np.zeros((4, 8)), 0.5, -1.0, 2.0, STAMP, "odom")
    grid = conv.costmap_msg_to_grid(msg, expected_frame="odom")
    assert (grid.data.shape, grid.resolution, grid.origin_x, grid.origin_y) == ((4, 8), 0.5, -1.0, 2.0)
    with pytest.raises(ValueError, match="header.frame_id is 'map'"):
        conv.costmap_msg_to_grid(conv.grid_to_occupancy_msg(np.zeros((4, 8)), 0.5, 0, 0, STAMP, "map"), "odom")
    msg.data[3] = 120
    with pytest.raises(ValueError, match="occupancy is -1 or 0..100"):
        conv.costmap_msg_to_grid(msg)
    msg = conv.grid_to_occupancy_msg(np.zeros((4, 8)), 0.5, float("nan"), 0.0, STAMP, "odom")
    with pytest.raises(ValueError, match="info.origin.position"):
        conv.costmap_msg_to_grid(msg)
