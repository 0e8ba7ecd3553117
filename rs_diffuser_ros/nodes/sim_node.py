"""The `sim` node: the RiskyNav PyBullet world as a ROS robot.

Steps the gymnasium env every control period (0.1 s of simulated time, 0.1 / real_time_factor
s of wall time) with the last /cmd_vel (zero when it is older than cmd_vel_timeout_s), and
publishes what a real robot stack would:

  /odom (nav_msgs/Odometry, odom -> base_link)      every step
  /costmap (nav_msgs/OccupancyGrid, transient-local) the layout's static walls/obstacles, every
                                                     1/costmap_rate_hz s
  /risk_map (nav_msgs/OccupancyGrid, transient-local) the risky regions' hazard level 0..100
                                                     (risky_nav.occupancy.risk_grid), same grid and rate
  /risk_severity_map (nav_msgs/OccupancyGrid, transient-local) their severity level 0..100 (one event's size,
                                                     risky_nav.occupancy.severity_grid), same grid and rate
  /risky_regions (visualization_msgs/MarkerArray, transient-local) once: boxes + labels
  /goal_pose (geometry_msgs/PoseStamped)             the task's goal, to each new subscriber; a goal
                                                     received there (rviz2) becomes the task's goal
  /sim_events (std_msgs/String, JSON, transient-local) risk strikes, collisions, region entry/exit,
                                                     goal reached, time limit (see EVENT_KINDS)
  TF odom -> base_link                               when tf2_ros is importable (not on pip-only set-ups)

The world runs on after the goal is reached or the layout's time limit passes (a person in
rviz2 may send another goal); each of those is reported once per goal as an event.
"""
import json
import math
import signal
import sys
import time

import gymnasium
import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TransformStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import ColorRGBA, Header, String
from visualization_msgs.msg import Marker, MarkerArray

import risky_nav
from risky_nav.occupancy import risk_grid, severity_grid
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import (goal_to_pose, grid_to_occupancy_msg, pose_to_goal,
                                               state_to_odometry, twist_to_action)

# Every kind of event published on /sim_events, as {"event": kind, "step", "sim_time", "x", "y", ...}.
EVENT_KINDS = ("start", "new_goal", "risk", "collision", "entered_risky_region", "left_risky_region", "goal_reached",
               "time_limit")


def _float_param(description, low, high):
    return ParameterDescriptor(description=description, read_only=True, floating_point_range=[
        FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)])


def _param(description):
    return ParameterDescriptor(description=description, read_only=True)


PARAMETERS = [
    ("layout", "default", _param("Layout name (sim/risky_nav/layouts) or path to a layout YAML.")),
    ("real_time_factor", 1.0, _float_param("Simulated seconds per wall-clock second.", 0.01, 100.0)),
    ("seed", -1, ParameterDescriptor(description="Seed of the env (start/goal sampling, risk draws); -1: random.",
                                     read_only=True, integer_range=[IntegerRange(from_value=-1, to_value=2**31 - 1,
                                                                                 step=1)])),
    ("start", Parameter.Type.DOUBLE_ARRAY, _param("[x, y] or [x, y, yaw] start; unset: sampled in the layout's "
                                                  "start region.")),
    ("goal", Parameter.Type.DOUBLE_ARRAY, _param("[x, y] goal; unset: sampled in the layout's goal region.")),
    ("publish_goal", True, _param("Publish the task's goal on /goal_pose, so the planner drives without rviz2.")),
    ("cmd_vel_timeout_s", 0.5, _float_param("A /cmd_vel older than this (wall clock) counts as zero.", 0.01, 60.0)),
    ("grid_resolution", 0.05, _float_param("Costmap cell size, m.", 0.01, 1.0)),
    ("costmap_rate_hz", 1.0, _float_param("Republish the costmap and the risk map this often (wall clock), as Nav2's "
                                          "costmaps do, so the planner can tell a live map from a dead publisher.",
                                          0.1, 50.0)),
    ("global_frame", "odom", _param("Frame of odometry, costmap, goal and markers.")),
    ("base_frame", "base_link", _param("The robot's body frame (Odometry.child_frame_id, TF child).")),
]


def _tf_broadcaster(node):
    """A tf2_ros TransformBroadcaster, or None where tf2_ros is not installed (pip-only set-ups)."""
    try:
        from tf2_ros import TransformBroadcaster
    except ImportError:
        node.get_logger().info("tf2_ros is not installed here: not broadcasting TF odom -> base_link "
                               "(odometry, plans and markers are all in the odom frame, so rviz2 needs no TF)")
        return None
    return TransformBroadcaster(node)


def risky_region_markers(layout, stamp, frame_id: str) -> MarkerArray:
    """A translucent box per risky region, shaded by its strike probability, and a label."""
    markers = MarkerArray()
    header = Header(stamp=stamp, frame_id=frame_id)
    highest_p = max((r.p for r in layout.risky_regions), default=1.0)
    for i, region in enumerate(layout.risky_regions):
        box = Marker(header=header, ns="risky_regions", id=i, type=Marker.CUBE, action=Marker.ADD)
        box.pose.position.x, box.pose.position.y, box.pose.position.z = region.box.center_x, region.box.center_y, 0.005
        box.pose.orientation.w = 1.0
        box.scale.x, box.scale.y, box.scale.z = region.box.size_x, region.box.size_y, 0.01
        box.color = ColorRGBA(r=0.95, g=0.35, b=0.05, a=float(0.25 + 0.35 * region.p / highest_p))
        label = Marker(header=header, ns="risky_region_labels", id=i, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, text=f"{region.name}: p={region.p:g}, C={region.penalty:g}")
        label.pose.position.x, label.pose.position.y, label.pose.position.z = (region.box.center_x,
                                                                               region.box.center_y, 0.3)
        label.pose.orientation.w = 1.0
        label.scale.z = 0.25
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers.markers += [box, label]
    return markers


class SimNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("sim", **node_kwargs)
        self.declare_parameters("", PARAMETERS)
        # start/goal are typed but may be left unset: get_parameter_or gives None for them.
        p = {name: self.get_parameter_or(name).value for name, *_ in PARAMETERS}
        self.frame, self.base_frame = p["global_frame"], p["base_frame"]
        self.cmd_timeout_s = p["cmd_vel_timeout_s"]

        self.env = gymnasium.make(risky_nav.ENV_ID, layout=p["layout"], grid_resolution=p["grid_resolution"])
        self.layout = self.env.unwrapped.layout
        options = {}
        if p["start"] is not None:
            options["start"] = list(p["start"])
        if p["goal"] is not None:
            options["goal"] = list(p["goal"])
        self.obs, _ = self.env.reset(seed=None if p["seed"] < 0 else p["seed"], options=options)
        self.goal = self.env.unwrapped.goal
        self.step_count = 0
        self.goal_step = 0  # step_count when the current goal was set: its time limit counts from there
        self.episode_return = 0.0
        self.in_region = False
        self.touching = False
        self.goal_reported = self.time_limit_reported = False
        self.last_cmd = np.zeros(2, dtype=np.float32)
        self.last_cmd_at = -math.inf

        self.odom_pub = self.create_publisher(Odometry, topics.ODOM, 10)
        self.costmap_pub = self.create_publisher(OccupancyGrid, topics.COSTMAP, topics.LATCHED)
        self.risk_map_pub = self.create_publisher(OccupancyGrid, topics.RISK_MAP, topics.LATCHED)
        self.severity_map_pub = self.create_publisher(OccupancyGrid, topics.RISK_SEVERITY_MAP, topics.LATCHED)
        self.regions_pub = self.create_publisher(MarkerArray, topics.RISKY_REGIONS, topics.LATCHED)
        self.events_pub = self.create_publisher(String, topics.SIM_EVENTS, topics.EVENTS)
        self.goal_pub = self.create_publisher(PoseStamped, topics.GOAL, 10) if p["publish_goal"] else None
        self.goal_subscribers = 0
        self.create_subscription(Twist, topics.CMD_VEL, self._on_cmd_vel, 10)
        self.create_subscription(PoseStamped, topics.GOAL, self._on_goal, 10)
        self.tf = _tf_broadcaster(self)

        stamp = self.get_clock().now().to_msg()
        grid = self.env.unwrapped.occupancy_grid()
        self.costmap_msg = grid_to_occupancy_msg(grid.data, grid.resolution, grid.origin_x, grid.origin_y, stamp,
                                                 self.frame)
        # The costmap's geometry: same layout, same resolution.
        self.risk_map_msg, self.severity_map_msg = (
            grid_to_occupancy_msg(g.data, g.resolution, g.origin_x, g.origin_y, stamp, self.frame)
            for g in (risk_grid(self.layout, grid.resolution), severity_grid(self.layout, grid.resolution)))
        self._publish_maps()
        self.create_timer(1.0 / p["costmap_rate_hz"], self._publish_maps)
        self.regions_pub.publish(risky_region_markers(self.layout, stamp, self.frame))
        self._publish_odom()
        self._event("start", layout=self.layout.name, goal=[float(g) for g in self.goal])
        period = self.env.unwrapped.control_period / p["real_time_factor"]
        self.create_timer(period, self._step)
        self.get_logger().info(
            f"layout '{self.layout.name}': start ({self.obs[0]:.2f}, {self.obs[1]:.2f}), goal ({self.goal[0]:.2f}, "
            f"{self.goal[1]:.2f}); stepping every {period * 1e3:.0f} ms (real_time_factor {p['real_time_factor']:g})")

    def _publish_maps(self) -> None:
        stamp = self.get_clock().now().to_msg()
        for msg, publisher in ((self.costmap_msg, self.costmap_pub), (self.risk_map_msg, self.risk_map_pub),
                               (self.severity_map_msg, self.severity_map_pub)):
            msg.header.stamp = stamp
            publisher.publish(msg)

    def _on_cmd_vel(self, msg: Twist) -> None:
        try:
            self.last_cmd = twist_to_action(msg)
        except ValueError as error:
            self.last_cmd = np.zeros(2, dtype=np.float32)
            self.get_logger().warning(f"{error}: driving zero", throttle_duration_sec=2.0)
        self.last_cmd_at = time.monotonic()

    def _on_goal(self, msg: PoseStamped) -> None:
        """A goal from rviz2 (or anyone) becomes the task's goal: reward and goal events follow it."""
        try:
            goal = pose_to_goal(msg, expected_frame=self.frame)
            if np.allclose(goal, self.goal, atol=1e-6):
                return  # our own announcement, or a repeat
            self.env.unwrapped.set_goal(goal)
        except ValueError as error:
            self.get_logger().warning(f"goal ignored: {error}")
            return
        self.goal = self.env.unwrapped.goal
        self.goal_reported, self.time_limit_reported, self.episode_return = False, False, 0.0
        self.goal_step = self.step_count
        self._event("new_goal", goal=[float(g) for g in self.goal])

    def _step(self) -> None:
        fresh = time.monotonic() - self.last_cmd_at <= self.cmd_timeout_s
        action = self.last_cmd if fresh else np.zeros(2, dtype=np.float32)
        self.obs, reward, _, _, info = self.env.step(action)
        self.step_count += 1
        self._publish_odom()
        self._publish_goal_to_new_subscribers()
        self._report(info, reward)

    def _report(self, info: dict, reward: float) -> None:
        if not self.goal_reported:
            self.episode_return += reward
        if info["risk_event"]:
            self._event("risk", penalty=info["risk_penalty"])
        if info["collision"] and not self.touching:
            self._event("collision")
        self.touching = info["collision"]
        if info["in_risky_region"] != self.in_region:
            self.in_region = info["in_risky_region"]
            self._event("entered_risky_region" if self.in_region else "left_risky_region")
        if info["goal_reached"] and not self.goal_reported:
            self.goal_reported = True
            self._event("goal_reached", episode_return=self.episode_return)
        if (not self.time_limit_reported and not self.goal_reported
                and self.step_count - self.goal_step >= self.env.unwrapped.max_episode_steps):
            self.time_limit_reported = True
            self._event("time_limit", episode_return=self.episode_return)

    def _event(self, kind: str, **fields) -> None:
        sim_time = self.step_count * self.env.unwrapped.control_period
        payload = {"event": kind, "step": self.step_count, "sim_time": round(sim_time, 3),
                   "x": round(float(self.obs[0]), 3), "y": round(float(self.obs[1]), 3), **fields}
        self.events_pub.publish(String(data=json.dumps(payload)))
        if kind != "start":
            self.get_logger().info(f"event {json.dumps(payload)}")

    def _publish_odom(self) -> None:
        stamp = self.get_clock().now().to_msg()
        odom = state_to_odometry(self.obs[:6], stamp, self.frame, self.base_frame)
        self.odom_pub.publish(odom)
        if self.tf is not None:
            transform = TransformStamped()
            transform.header, transform.child_frame_id = odom.header, self.base_frame
            p = odom.pose.pose.position
            transform.transform.translation.x, transform.transform.translation.y = p.x, p.y
            transform.transform.rotation = odom.pose.pose.orientation
            self.tf.sendTransform(transform)

    def _publish_goal_to_new_subscribers(self) -> None:
        """A volatile /goal_pose (what rviz2 and the planner use) reaches only those already listening:
        send the goal again whenever a subscriber appears."""
        if self.goal_pub is None:
            return
        count = self.goal_pub.get_subscription_count()
        if count > self.goal_subscribers:
            self.goal_pub.publish(goal_to_pose(self.goal, self.get_clock().now().to_msg(), self.frame))
        self.goal_subscribers = count


def main(args=None) -> int:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    try:
        node = SimNode()
    except (risky_nav.LayoutError, ValueError) as error:  # bad layout file/field, bad start/goal, bad parameter
        print(f"sim: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.env.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
