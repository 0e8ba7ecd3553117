"""The sim node over real DDS, in its own process: the world it publishes and how it drives."""
import json
import subprocess

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from rclpy.parameter import Parameter
from risky_nav.layout import load_layout
from risky_nav.occupancy import risk_grid
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import odometry_to_state, occupancy_msg_to_grid
from rs_diffuser_ros.nodes.planner_node import PlannerNode
from test_nodes_helpers import CONFIG, executable, make_random_checkpoint, nodes, probe, ros_env  # noqa: F401

pytestmark = pytest.mark.timeout(120)

# Default layout: the risky passage spans x in [4, 8], y in [2.9, 5.1]; walls are 0.1 m thick.
START = (3.0, 4.0, 0.0)
GOAL = (10.5, 4.0)


def sim_argv(**overrides):
    params = {"seed": 1, "real_time_factor": 4.0, "start": list(START), "goal": list(GOAL), **overrides}
    argv = [executable("sim_node"), "--ros-args", "--params-file", str(CONFIG / "sim.yaml")]
    for name, value in params.items():
        argv += ["-p", f"{name}:={value}"]
    return argv


def events(probe):
    return [json.loads(m.data) for _, m in probe.messages("sim_events")]


def latest_state(probe):
    return odometry_to_state(probe.messages("odom")[-1][1], expected_frame="odom")


def test_sim_publishes_map_regions_goal_and_odometry_then_drives_on_cmd_vel(nodes, probe):
    probe.record(Odometry, "odom")
    probe.record(PoseStamped, "goal_pose")
    probe.record(String, "sim_events", topics.EVENTS)
    sim = nodes.start(sim_argv(), "sim")
    probe.wait_for(lambda: len(probe.messages("odom")) > 20, 60, "odometry from the sim", nodes)
    np.testing.assert_allclose(latest_state(probe), [*START[:2], 0.0, 1.0, 0.0, 0.0], atol=1e-3)
    odom = probe.messages("odom")[-1][1]
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    probe.wait_for(lambda: probe.messages("goal_pose"), 10, "the task's goal on goal_pose")
    goal = probe.messages("goal_pose")[-1][1]
    assert (goal.pose.position.x, goal.pose.position.y, goal.header.frame_id) == (*GOAL, "odom")

    # Joining late still gets the map and the regions: they are latched (transient local).
    probe.record(OccupancyGrid, "costmap", topics.LATCHED)
    probe.record(MarkerArray, "risky_regions", topics.LATCHED)
    probe.wait_for(lambda: probe.messages("costmap") and probe.messages("risky_regions"), 20, "latched topics")
    grid, resolution, x0, y0 = occupancy_msg_to_grid(probe.messages("costmap")[-1][1])
    assert (grid.shape[1] * resolution, grid.shape[0] * resolution, x0, y0) == pytest.approx((12.0, 8.0, 0.0, 0.0))

    def occupied(x, y):
        return grid[int((y - y0) / resolution), int((x - x0) / resolution)] == 100

    assert occupied(6.0, 1.45) and occupied(6.0, 5.9) and occupied(0.05, 4.0)  # blocks and the left wall
    assert not occupied(*START[:2]) and not occupied(6.0, 4.0)  # start and the (risky) passage are free
    boxes = [m for m in probe.messages("risky_regions")[-1][1].markers if m.type == Marker.CUBE]
    assert len(boxes) == 1
    assert (boxes[0].pose.position.x, boxes[0].pose.position.y, boxes[0].scale.x, boxes[0].scale.y) == \
        pytest.approx((6.0, 4.0, 4.0, 2.2))

    # Drive forward into the risky passage: odometry follows, and entering it is an event.
    forward = Twist()
    forward.linear.x = 0.8
    _, drive = probe.publish_periodically(Twist, "cmd_vel", lambda: forward, 0.05)
    probe.wait_for(lambda: any(e["event"] == "entered_risky_region" for e in events(probe)), 30,
                   "the robot to enter the risky passage")
    drive.cancel()
    entered = next(e for e in events(probe) if e["event"] == "entered_risky_region")
    assert entered["x"] >= 4.0 - 1e-3 and abs(entered["y"] - START[1]) < 0.05
    assert events(probe)[0]["event"] == "start" and events(probe)[0]["goal"] == list(GOAL)

    # No more commands: after cmd_vel_timeout_s the sim brakes to a standstill.
    probe.wait_for(lambda: len(probe.messages("odom")) > 5 and all(
        abs(m.twist.twist.linear.x) < 1e-6 for _, m in probe.messages("odom")[-5:]), 20, "the robot to stop")
    x_stopped = latest_state(probe)[0]
    assert x_stopped > entered["x"]

    # A goal from rviz2's tool becomes the task's goal.
    new_goal = PoseStamped()
    new_goal.header.frame_id = "odom"
    new_goal.pose.position.x, new_goal.pose.position.y, new_goal.pose.orientation.w = 10.5, 2.0, 1.0
    goal_pub = probe.node.create_publisher(PoseStamped, "goal_pose", 10)
    probe.wait_for(lambda: goal_pub.get_subscription_count() > 0, 10, "the sim to subscribe to goal_pose")
    goal_pub.publish(new_goal)
    probe.wait_for(lambda: any(e["event"] == "new_goal" for e in events(probe)), 10, "the new goal to be taken")
    assert next(e for e in events(probe) if e["event"] == "new_goal")["goal"] == [10.5, 2.0]
    assert sim.poll() is None


def test_risk_map_reaches_a_late_subscriber_and_the_planner_node(nodes, probe, tmp_path):
    """two_risks: cliff (centre (6, 5), p 0.004, C 16 -> hazard 6, severity 64) and gravel ((6, 1.8), p 0.1, C 1 ->
    hazard 10, severity 4): the severity map tells the rare large event from the frequent small one."""
    nodes.start(sim_argv(layout="two_risks", start=[1.5, 5.0, 0.0], goal=[10.5, 5.0]), "sim")
    probe.record(OccupancyGrid, "costmap", topics.LATCHED)
    probe.wait_for(lambda: probe.messages("costmap"), 60, "the costmap", nodes)
    # The planner node, in this process on the test's domain, spun by the probe's executor.
    planner = PlannerNode(context=probe.context, parameter_overrides=[
        Parameter("checkpoint", value=str(make_random_checkpoint(tmp_path / "random.safetensors"))),
        Parameter("device", value="cpu"), Parameter("torch_threads", value=1),
        Parameter("replan_rate_hz", value=0.1)])  # no goal anyway: it only listens
    probe.executor.add_node(planner)
    try:
        # A transient-local subscription matches only a transient-local (latched) publisher: receiving proves it.
        probe.record(OccupancyGrid, "risk_map", topics.LATCHED)
        probe.wait_for(lambda: probe.messages("risk_map"), 20, "the latched risk map", nodes)
        msg = probe.messages("risk_map")[-1][1]
        costmap = probe.messages("costmap")[-1][1]
        assert msg.header.frame_id == costmap.header.frame_id == "odom"
        assert (msg.info.width, msg.info.height, msg.info.resolution) == (
            costmap.info.width, costmap.info.height, costmap.info.resolution)
        assert msg.info.origin.position == costmap.info.origin.position
        grid, resolution, x0, y0 = occupancy_msg_to_grid(msg, "risk map")

        def hazard(x, y):
            return int(grid[int((y - y0) / resolution), int((x - x0) / resolution)])

        assert hazard(6.0, 5.0) == 6 and hazard(6.0, 1.8) == 10
        assert hazard(1.5, 5.0) == hazard(10.5, 5.0) == hazard(6.0, 8.9) == hazard(3.0, 3.5) == 0
        np.testing.assert_array_equal(grid, risk_grid(load_layout("two_risks"), resolution).data)

        # The planner node's subscription hands the same layer to its controller.
        probe.wait_for(lambda: planner.controller.risk_map is not None, 20, "the planner to get the risk map", nodes)
        np.testing.assert_array_equal(planner.controller.risk_map.data, grid)
        assert (planner.controller.risk_map.resolution, planner.controller.risk_map.origin_x,
                planner.controller.risk_map.origin_y) == (resolution, x0, y0)
        # Its severity the same way: on the costmap's grid, to the planner's controller.
        probe.record(OccupancyGrid, "risk_severity_map", topics.LATCHED)
        probe.wait_for(lambda: probe.messages("risk_severity_map"), 20, "the latched risk severity map", nodes)
        severity, *geometry = occupancy_msg_to_grid(probe.messages("risk_severity_map")[-1][1], "risk severity map")
        assert tuple(geometry) == (resolution, x0, y0) and severity.shape == grid.shape
        at = lambda x, y: int(severity[int((y - y0) / resolution), int((x - x0) / resolution)])  # noqa: E731
        assert at(6.0, 5.0) == 64 and at(6.0, 1.8) == 4 and at(1.5, 5.0) == at(3.0, 3.5) == 0
        probe.wait_for(lambda: planner.controller.risk_severity_map is not None, 20,
                       "the planner to get the risk severity map", nodes)
        np.testing.assert_array_equal(planner.controller.risk_severity_map.data, severity)
        # Republished with the costmap (costmap_rate_hz = 1 in config/sim.yaml), as Nav2's costmaps are.
        count = len(probe.messages("risk_map"))
        probe.wait_for(lambda: len(probe.messages("risk_map")) > count, 10, "the risk map to be republished", nodes)
    finally:
        probe.executor.remove_node(planner)
        planner.destroy_node()


def test_sim_refuses_a_bad_layout_naming_it(ros_env):
    result = subprocess.run(sim_argv(layout="no_such_layout"), env=ros_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "no_such_layout" in result.stderr


def test_sim_refuses_a_start_inside_an_obstacle(ros_env):
    result = subprocess.run(sim_argv(start=[6.0, 1.45]), env=ros_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "start" in result.stderr and "not free" in result.stderr
