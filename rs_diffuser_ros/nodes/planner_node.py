"""The `planner` node: odometry, costmap and goal in; cmd_vel, plan, candidates and RiskPlan out.

A thin adapter around rs_diffuser_ros.core.RiskSensitivePlanner. On a timer
(`replan_rate_hz`) it reads the parameters once, checks the inputs, replans and publishes:

  /odom (nav_msgs/Odometry)           -> state [x, y, sin_yaw, cos_yaw, v, omega]
  /costmap (nav_msgs/OccupancyGrid)   -> core Costmap (transient-local, like map_server)
  /goal_pose (geometry_msgs/PoseStamped, rviz2's "2D Goal Pose")
  /cmd_vel (geometry_msgs/Twist)      <- the plan's first action, clipped to the velocity limits
  /plan (nav_msgs/Path)               <- the chosen plan
  /candidate_plans (MarkerArray)      <- every candidate, coloured by its risk value
  /risk_plan (rs_diffuser_ros/RiskPlan)

Safety rules: stale or invalid odometry -> zero velocity (throttled warning); odometry out
of order or far in the past is dropped (so a stream of it goes stale); a costmap that is
malformed or in another frame is ignored, the previous one kept; robot or goal outside the
map -> zero velocity; a failing replan -> zero velocity (throttled error), retried on the
next tick; goal reached -> zero velocity and no replanning until a new goal. Docs:
docs/ros.md, docs/reliability.md. Parameter changes (alpha, risk_mode, ...)
apply from the next replan; invalid ones are refused with a reason (planner_params).
"""
import signal
import sys
import time

import numpy as np
import rclpy
import torch
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from visualization_msgs.msg import MarkerArray

from rs_diffuser_ros.core import RiskSensitivePlanner
from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import (InvalidOdometry, action_to_twist, candidates_to_markers,
                                               costmap_bounds, occupancy_msg_to_costmap, odometry_to_state,
                                               outside_bounds, plan_result_to_risk_plan, plan_to_path, pose_to_goal,
                                               stamp_seconds)
from rs_diffuser_ros.nodes.goal_approach import approach_speed_limit
from rs_diffuser_ros.nodes.odom_watchdog import OdometryWatchdog
from rs_diffuser_ros.nodes.planner_params import (MODEL_OWN, PlannerSettings, check_parameter,
                                                  declare_planner_parameters, resolve_checkpoint)

LOG_THROTTLE_S = 2.0


class PlannerNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("planner", **node_kwargs)
        self.planner = None
        self.model_sampling = {}
        self._loaded = {}  # checkpoint parameter value -> planner loaded while validating it
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        declare_planner_parameters(self)  # runs the callbacks: the YAML's values are validated too

        self.frame = self.get_parameter("global_frame").value
        self.watchdog = OdometryWatchdog(self.get_parameter("odom_timeout_s").value)
        self.goal = None
        self._last_stop_cause, self._last_stop_warned = None, -float("inf")  # for the stop warnings
        self._warned_at = {}  # input-problem cause -> when it was last warned
        self.costmap_msg = None
        self.map_bounds = None  # (x_min, y_min, x_max, y_max) of the last valid costmap
        self._costmap = None  # (inflation radius, core Costmap) built from costmap_msg

        self.create_subscription(Odometry, topics.ODOM, self._on_odom, topics.ODOM_IN)
        self.create_subscription(OccupancyGrid, topics.COSTMAP, self._on_costmap, topics.LATCHED)
        self.create_subscription(PoseStamped, topics.GOAL, self._on_goal, 10)
        self.cmd_pub = self.create_publisher(Twist, topics.CMD_VEL, 10)
        self.path_pub = self.create_publisher(Path, topics.PLAN, 10)
        self.markers_pub = self.create_publisher(MarkerArray, topics.CANDIDATES, 10)
        self.risk_pub = self.create_publisher(RiskPlan, topics.RISK_PLAN, 10)
        self.create_timer(1.0 / self.get_parameter("replan_rate_hz").value, self._replan)
        self.get_logger().info(
            f"planner ready on {self.planner.device}: replanning at {self.get_parameter('replan_rate_hz').value:g} Hz, "
            f"alpha={self.get_parameter('alpha').value:g} ({self.get_parameter('risk_mode').value}); waiting for a goal")

    # --- parameters ------------------------------------------------------------------------
    def _validate_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            reason = check_parameter(parameter.name, parameter.value)
            if reason is None and parameter.name == "ddim_steps" and self.planner is not None:
                limit = self.planner.config.model.diffusion_steps
                if parameter.value > limit:
                    reason = f"ddim_steps must be at most the model's diffusion steps ({limit}), got {parameter.value}"
            if reason is None and parameter.name == "checkpoint":
                reason = self._load_checkpoint(parameter.value)
            if reason is not None:
                self.get_logger().warning(f"refused {parameter.name}={parameter.value!r}: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _load_checkpoint(self, value: str):
        """Load the model a `checkpoint` value names; the reason it failed, or None."""
        path = resolve_checkpoint(value)
        try:
            device = self.get_parameter("device").value
            self._loaded = {value: RiskSensitivePlanner.from_checkpoint(path, device=device)}
        except Exception as error:  # CheckpointError, ConfigError, torch errors: all mean "refuse"
            what = "the default model" if not value else "checkpoint"
            return f"{what} {path} could not be loaded: {error}"
        return None

    def _apply_parameters(self, parameters) -> None:
        for parameter in parameters:
            if parameter.name == "checkpoint":
                self.planner = self._loaded.pop(parameter.value)
                # What the checkpoint itself samples with, before any of our overrides.
                self.model_sampling = {name: getattr(self.planner.config.planner, name) for name in MODEL_OWN}
                self.get_logger().info(f"model {resolve_checkpoint(parameter.value)} loaded on {self.planner.device} "
                                       f"(its own sampling settings: {self.model_sampling})")
            elif parameter.name == "torch_threads" and parameter.value > 0:
                torch.set_num_threads(parameter.value)
            elif parameter.name in ("alpha", "risk_mode") and self.planner is not None:
                self.get_logger().info(f"{parameter.name} set to {parameter.value}; used from the next replan")

    # --- inputs ----------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        now = time.monotonic()
        try:
            state = odometry_to_state(msg, expected_frame=self.frame)
        except InvalidOdometry as error:
            self.watchdog.count_arrival(now)
            self.watchdog.reject(str(error), now)
            return
        clock_now = self.get_clock().now().nanoseconds * 1e-9
        self.watchdog.count_arrival(now)
        dropped = self.watchdog.check_stamp(stamp_seconds(msg.header.stamp), clock_now, now)
        if dropped is None:
            self.watchdog.accept(state, now, stamp_seconds(msg.header.stamp))
        if dropped is not None:
            self._warn_throttled(dropped.split(":")[0], f"odometry ignored: {dropped}")

    def _on_costmap(self, msg: OccupancyGrid) -> None:
        try:
            bounds = costmap_bounds(msg, expected_frame=self.frame)
        except ValueError as error:  # keep planning with the last good map rather than a wrong one
            self._warn_throttled(str(error), f"costmap ignored, keeping the previous one: {error}")
            return
        self.costmap_msg, self.map_bounds, self._costmap = msg, bounds, None
        self.get_logger().info(f"costmap received: {msg.info.width}x{msg.info.height} at {msg.info.resolution:g} m")

    def _on_goal(self, msg: PoseStamped) -> None:
        try:
            goal = pose_to_goal(msg, expected_frame=self.frame)
        except ValueError as error:
            self.get_logger().error(f"goal ignored: {error}")
            return
        self.goal = goal
        self.get_logger().info(f"new goal ({goal[0]:.2f}, {goal[1]:.2f})")

    def _costmap_for(self, settings: PlannerSettings):
        """The core Costmap to plan with (built once per costmap message and inflation radius)."""
        if not settings.use_costmap or self.costmap_msg is None:
            return None
        if self._costmap is None or self._costmap[0] != settings.costmap_inflation_m:
            self._costmap = (settings.costmap_inflation_m,
                             occupancy_msg_to_costmap(self.costmap_msg, settings.costmap_inflation_m))
        return self._costmap[1]

    # --- replanning ------------------------------------------------------------------------
    def _stop(self) -> None:
        self.cmd_pub.publish(Twist())

    def _warn_throttled(self, cause: str, message: str) -> None:
        """At most one warning per cause every LOG_THROTTLE_S (rclpy's throttle is per call site:
        it would hide a second, different problem behind the first)."""
        now = time.monotonic()
        if now - self._warned_at.get(cause, -float("inf")) >= LOG_THROTTLE_S:
            self._warned_at[cause] = now
            self.get_logger().warning(message)

    def _warn_stop(self, why: str) -> None:
        """Warn at once when the cause changes (stale -> NaN), at most every LOG_THROTTLE_S while it stays."""
        cause, now = why.split(":")[0], time.monotonic()
        if cause != self._last_stop_cause or now - self._last_stop_warned >= LOG_THROTTLE_S:
            self.get_logger().warning(f"zero velocity: {why}")
            self._last_stop_warned = now
        self._last_stop_cause = cause

    def _replan(self) -> None:
        settings = PlannerSettings.from_node(self)  # one consistent set of values for this replan
        goal = self.goal
        self.watchdog.timeout_s = settings.odom_timeout_s
        state, why_not = self.watchdog.current(time.monotonic())
        if goal is None:
            return  # idle: no goal yet, or the last one was reached (zero velocity already sent)
        if state is None:
            self._stop()
            self._warn_stop(why_not)
            return
        bounds = self.map_bounds
        if self.watchdog.flooded:
            self._warn_throttled("odometry flood", f"odometry flood: {self.watchdog.rate_hz:.0f} messages/s; "
                                 "planning on the latest only")
        for what, xy in (("robot", state[:2]), ("goal", goal)):
            why = outside_bounds(xy, bounds)
            if why:  # the model and the costmap know nothing beyond the map: do not drive there
                self._stop()
                self._warn_stop(f"{what} outside the map: {why}")
                return
        distance = float(np.hypot(*(state[:2] - goal)))
        self._last_stop_cause = None
        if distance <= settings.goal_tolerance_m:
            self._stop()
            if self.goal is goal:
                self.goal = None
            self.get_logger().info(f"goal reached ({distance:.2f} m <= {settings.goal_tolerance_m:g} m); stopped")
            return
        try:
            twist = self._plan_and_publish(state, goal, settings, approach_speed_limit(
                distance, settings.max_linear_speed, settings.approach_slowdown_m, settings.min_approach_speed))
        except Exception as error:  # a failed replan must not kill the node: stop, report, retry next tick
            self._stop()
            self.get_logger().error(f"replan failed, zero velocity: {type(error).__name__}: {error}",
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return
        self.cmd_pub.publish(twist)

    def _plan_and_publish(self, state, goal, settings: PlannerSettings, max_linear_speed: float) -> Twist:
        planner, model_sampling = self.planner, self.model_sampling
        wanted = settings.sampling(model_sampling)
        if any(getattr(planner.config.planner, name) != value for name, value in wanted.items()):
            planner.configure(**wanted)
        costmap = self._costmap_for(settings)
        result = planner.plan(state, goal, alpha=settings.alpha, risk_mode=settings.risk_mode, costmap=costmap,
                              seed=None if settings.seed < 0 else settings.seed)
        twist = action_to_twist(result.action, max_linear_speed, settings.max_angular_speed)
        stamp = self.get_clock().now().to_msg()
        self.path_pub.publish(plan_to_path(result.plan, stamp, self.frame))
        self.markers_pub.publish(candidates_to_markers(result.candidates, result.risk_values, result.chosen_index,
                                                       stamp, self.frame))
        self.risk_pub.publish(plan_result_to_risk_plan(result, settings.alpha, settings.risk_mode, stamp, self.frame))
        return twist


def main(args=None) -> int:
    # Our own SIGINT/SIGTERM handling, so the context is still up to send a last zero velocity.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    try:
        node = PlannerNode()
    except (InvalidParameterValueException, InvalidParameterTypeException) as error:
        # A bad value in config/planner.yaml or a -p override: say which and stop.
        print(f"planner: invalid parameter: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    # One thread for every callback. Odometry arriving during a replan waits in its depth-1
    # queue (only the newest is kept), so nothing goes stale. A multi-threaded executor
    # did worse: under a 1 kHz odometry flood on 2 cores its Python dispatch loop starved
    # the odometry callback (0.4 replans/s against 4-5 here, docs/reliability.md).
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.cmd_pub.publish(Twist())  # leave the robot stopped
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
