"""The `planner` node: odometry, costmap and goal in; cmd_vel, plan, candidates, RiskPlan and status out.

A thin adapter around rs_diffuser_ros.control.Controller, which owns every rule that decides the
command (the evaluation drives the same controller). Inputs are handed to the controller as they
arrive; on a timer (`replan_rate_hz`) the node reads the parameters once, calls
`controller.step()` and publishes what it returns:

  /odom (nav_msgs/Odometry)           -> controller.on_odometry (invalid ones: on_invalid_odometry)
  /costmap (nav_msgs/OccupancyGrid)   -> controller.on_costmap (transient-local, like map_server)
  /risk_map (nav_msgs/OccupancyGrid)  -> controller.on_risk_map (transient-local; hazard 0..100, the
                                         general model's risk input; a per-layout model ignores it)
  /risk_severity_map (nav_msgs/OccupancyGrid) -> controller.on_risk_severity_map (transient-local; severity 0..100,
                                         read by a model with model.map_severity; others ignore it)
  /goal_pose (geometry_msgs/PoseStamped, rviz2's "2D Goal Pose") -> controller.set_goal
  /cmd_vel (geometry_msgs/Twist)      <- the command (zero on every stop)
  /plan (nav_msgs/Path)               <- the chosen plan
  /candidate_plans (MarkerArray)      <- every candidate, coloured by its risk value
  /risk_plan (rs_diffuser_ros/RiskPlan)
  /planner_status (std_msgs/String)   <- "driving" or "<stop reason>: <why>", when it changes (latched)

The stop rules (stale or invalid odometry, no or stale costmap, robot or goal outside the map,
goal reached, failed plan) are the controller's: docs/ros.md, docs/reliability.md. Parameter
changes (alpha, risk_mode, ...) apply from the next tick; invalid ones are refused with a reason
(planner_params), and a checkpoint swap is refused when the running settings do not fit the new model.
"""
import signal
import sys
import time

import rclpy
import torch
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from rs_diffuser_ros.control import Command, Controller, ControllerSettings, StopReason
from rs_diffuser_ros.core import RiskSensitivePlanner
from rs_diffuser_ros.core.setting_spec import specs
from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import (InvalidOdometry, candidates_to_markers, command_to_twist,
                                               costmap_msg_to_grid, odometry_to_state, plan_result_to_risk_plan,
                                               plan_to_path, pose_to_goal, stamp_seconds)
from rs_diffuser_ros.nodes.planner_params import (check_parameter, controller_settings, declare_planner_parameters,
                                                  resolve_checkpoint)

LOG_THROTTLE_S = 2.0


class PlannerNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("planner", **node_kwargs)
        self.controller = None
        self._loaded = {}  # checkpoint parameter value -> planner loaded while validating it
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        declare_planner_parameters(self)  # runs the callbacks: the YAML's values are validated too

        self.frame = self.get_parameter("global_frame").value
        self._status = None  # the last published status line
        self._last_stop_cause, self._last_stop_warned = None, -float("inf")  # for the stop warnings
        self._warned_at = {}  # input-problem cause -> when it was last warned

        self.create_subscription(Odometry, topics.ODOM, self._on_odom, topics.ODOM_IN)
        self.create_subscription(OccupancyGrid, topics.COSTMAP, self._on_costmap, topics.LATCHED)
        self.create_subscription(OccupancyGrid, topics.RISK_MAP, self._on_risk_map, topics.LATCHED)
        self.create_subscription(OccupancyGrid, topics.RISK_SEVERITY_MAP, self._on_risk_severity_map, topics.LATCHED)
        self.create_subscription(PoseStamped, topics.GOAL, self._on_goal, 10)
        self.cmd_pub = self.create_publisher(Twist, topics.CMD_VEL, 10)
        self.path_pub = self.create_publisher(Path, topics.PLAN, 10)
        self.markers_pub = self.create_publisher(MarkerArray, topics.CANDIDATES, 10)
        self.risk_pub = self.create_publisher(RiskPlan, topics.RISK_PLAN, 10)
        self.status_pub = self.create_publisher(String, topics.PLANNER_STATUS, topics.LATCHED)
        self.create_timer(1.0 / self.get_parameter("replan_rate_hz").value, self._tick)
        self.get_logger().info(
            f"planner ready on {self.planner.device}: replanning at {self.get_parameter('replan_rate_hz').value:g} Hz, "
            f"alpha={self.get_parameter('alpha').value:g} ({self.get_parameter('risk_mode').value}); waiting for a goal")

    @property
    def planner(self):
        return self.controller.planner

    # --- parameters ------------------------------------------------------------------------
    def _validate_parameters(self, parameters) -> SetParametersResult:
        pending = {p.name: p.value for p in parameters}
        for parameter in parameters:
            reason = check_parameter(parameter.name, parameter.value)
            if reason is None and parameter.name == "checkpoint":
                reason = self._load_checkpoint(parameter.value)
            if reason is not None:
                break
        else:
            reason = self._check_against_model(pending)
        if reason is not None:
            self._loaded.clear()
            self.get_logger().warning(f"refused {', '.join(f'{n}={v!r}' for n, v in pending.items())}: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _check_against_model(self, pending: dict):
        """Every setting, with the pending changes, against the model that will run them (the new one when a
        checkpoint is being swapped in): e.g. ddim_steps must not exceed that model's diffusion steps, and route
        candidates need a map model."""
        planner = self._loaded.get(pending["checkpoint"]) if "checkpoint" in pending else (
            self.controller and self.controller.planner)
        if planner is None:
            return None
        current = {name: self.get_parameter(name).value for name in specs(ControllerSettings) if self.has_parameter(name)}
        settings = ControllerSettings(**{**current, **{k: v for k, v in pending.items() if k in current or
                                                          k in ControllerSettings.__dataclass_fields__}})
        return settings.check_with(planner.config)

    def _load_checkpoint(self, value: str):
        """Load the model a `checkpoint` value names; the reason it failed, or None."""
        path = resolve_checkpoint(value)
        try:
            device = self.get_parameter("device").value
            planner = RiskSensitivePlanner.from_checkpoint(path, device=device)
            planner.set_execution(compiled=self.get_parameter("torch_compile").value)
            self._loaded = {value: planner}
        except Exception as error:  # CheckpointError, ConfigError, torch errors: all mean "refuse"
            what = "the default model" if not value else "checkpoint"
            return f"{what} {path} could not be loaded: {error}"
        return None

    def _apply_parameters(self, parameters) -> None:
        for parameter in parameters:
            if parameter.name == "checkpoint":
                planner = self._loaded.pop(parameter.value)
                if self.controller is None:
                    self.controller = Controller(planner)
                else:
                    self.controller.set_planner(planner)
                reads = ("map-conditioned: plans on the /costmap and /risk_map it receives" if planner.map_conditioned
                         else "a per-map model: it knows the map it was trained on")
                self.get_logger().info(f"model {resolve_checkpoint(parameter.value)} loaded on {planner.device}, {reads} "
                                       f"(its own sampling settings: {self.controller.model_sampling})")
            elif parameter.name == "torch_threads" and parameter.value > 0:
                torch.set_num_threads(parameter.value)
            elif parameter.name in ("alpha", "risk_mode") and self.controller is not None:
                self.get_logger().info(f"{parameter.name} set to {parameter.value}; used from the next replan")

    # --- inputs ----------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        now = time.monotonic()
        try:
            state = odometry_to_state(msg, expected_frame=self.frame)
        except InvalidOdometry as error:
            self.controller.on_invalid_odometry(str(error), now)
            return
        dropped = self.controller.on_odometry(state, now, stamp_seconds(msg.header.stamp),
                                              clock_now_s=self.get_clock().now().nanoseconds * 1e-9)
        if dropped is not None:
            self._warn_throttled(dropped.split(":")[0], f"odometry ignored: {dropped}")

    def _on_costmap(self, msg: OccupancyGrid) -> None:
        try:
            grid = costmap_msg_to_grid(msg, expected_frame=self.frame)
        except ValueError as error:  # keep planning with the last good map rather than a wrong one
            self._warn_throttled(str(error), f"costmap ignored, keeping the previous one: {error}")
            return
        now = time.monotonic()
        # Logged once per map source: the first one, and the first after a silence (a restarted map publisher),
        # not every republication.
        timeout = self.get_parameter("costmap_timeout_s").value
        if self.controller.grid is None or 0 < timeout < now - self.controller.grid_received_at:
            self.get_logger().info(f"costmap received: {msg.info.width}x{msg.info.height} at {msg.info.resolution:g} m")
        self.controller.on_costmap(grid, now)

    def _on_risk_map(self, msg: OccupancyGrid) -> None:
        self._on_risk_layer(msg, "risk map", "hazard", "risk_map", self.controller.on_risk_map)

    def _on_risk_severity_map(self, msg: OccupancyGrid) -> None:
        self._on_risk_layer(msg, "risk severity map", "severity", "risk_severity_map",
                            self.controller.on_risk_severity_map)

    def _on_risk_layer(self, msg: OccupancyGrid, what: str, value: str, kept_as: str, hand_over) -> None:
        """A risk layer (the risk map or its severity) to the controller; a malformed one is ignored with a
        throttled warning, as the costmap is, and the last good one kept rather than a wrong one."""
        try:
            grid = costmap_msg_to_grid(msg, expected_frame=self.frame, what=what)
        except ValueError as error:
            self._warn_throttled(str(error), f"{what} ignored, keeping the previous one: {error}")
            return
        first = getattr(self.controller, kept_as) is None
        hand_over(grid, time.monotonic())
        if first:
            self.get_logger().info(f"{what} received: {msg.info.width}x{msg.info.height} at "
                                   f"{msg.info.resolution:g} m, highest {value} {int(grid.data.max())}")

    def _on_goal(self, msg: PoseStamped) -> None:
        try:
            goal = pose_to_goal(msg, expected_frame=self.frame)
        except ValueError as error:
            self.get_logger().error(f"goal ignored: {error}")
            return
        self.controller.set_goal(goal)
        self.get_logger().info(f"new goal ({goal[0]:.2f}, {goal[1]:.2f})")

    # --- one tick --------------------------------------------------------------------------
    def _tick(self) -> None:
        settings = controller_settings(self)  # one consistent set of values for this tick
        self.controller.set_settings(settings)
        if self.controller.watchdog.flooded:
            self._warn_throttled("odometry flood", f"odometry flood: {self.controller.watchdog.rate_hz:.0f} "
                                 "messages/s; planning on the latest only")
        started = time.monotonic()
        command = self.controller.step(started)
        # The robot drove on under the last command while this one was worked out: the whole tick counts (the
        # collision check and the maps too), not only the plan call's PlanResult.latency_ms.
        if command.plan is not None:
            self.controller.on_tick_duration(time.monotonic() - started)
        if command.stop is StopReason.NO_GOAL:
            return  # idle: no goal yet, or the last one was reached (zero velocity already sent)
        if command.plan is not None:
            self._publish_plan(command, settings)
        self.cmd_pub.publish(command_to_twist(command.v, command.omega))
        self._report(command)

    def _publish_plan(self, command: Command, settings) -> None:
        result, stamp = command.plan, self.get_clock().now().to_msg()
        self.path_pub.publish(plan_to_path(result.plan, stamp, self.frame))
        self.markers_pub.publish(candidates_to_markers(result.candidates, result.risk_values, result.chosen_index,
                                                       stamp, self.frame))
        self.risk_pub.publish(plan_result_to_risk_plan(result, settings.alpha, settings.risk_mode, stamp, self.frame))

    def _report(self, command: Command) -> None:
        """Publish the status when it changes; log stops (at once when the cause changes, then throttled)."""
        status = "driving" if command.stop is None else f"{command.stop.value}: {command.why}"
        if status.split(":")[0] != (self._status or "").split(":")[0]:
            self.status_pub.publish(String(data=status))
        self._status = status
        if command.stop is None:
            self._last_stop_cause = None
            return
        if command.stop is StopReason.GOAL_REACHED:
            self.get_logger().info(f"{command.why}; stopped")
        elif command.stop is StopReason.PLAN_FAILED:
            self.get_logger().error(f"replan failed, zero velocity: {command.why}", throttle_duration_sec=LOG_THROTTLE_S)
        else:
            self._warn_stop(command.why, command.v)

    def _warn_throttled(self, cause: str, message: str) -> None:
        """At most one warning per cause every LOG_THROTTLE_S (rclpy's throttle is per call site:
        it would hide a second, different problem behind the first)."""
        now = time.monotonic()
        if now - self._warned_at.get(cause, -float("inf")) >= LOG_THROTTLE_S:
            self._warned_at[cause] = now
            self.get_logger().warning(message)

    def _warn_stop(self, why: str, v: float) -> None:
        """Warn at once when the cause changes (stale -> NaN), at most every LOG_THROTTLE_S while it stays. v: the
        speed sent (a recovery step moves slowly; every other stop sends zero)."""
        cause, now = why.split(":")[0], time.monotonic()
        if cause != self._last_stop_cause or now - self._last_stop_warned >= LOG_THROTTLE_S:
            self.get_logger().warning(f"{'zero velocity' if v == 0.0 else f'slow step at {v:.2f} m/s'}: {why}")
            self._last_stop_warned = now
        self._last_stop_cause = cause


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
