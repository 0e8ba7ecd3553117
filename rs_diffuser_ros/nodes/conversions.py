"""Message <-> array conversions between ROS 2 messages and the ROS-free core / simulation.

Every function here is pure: a message (or array) in, an array (or message) out. Bad input
raises ValueError naming the message field that was wrong, so the nodes can log it and
fall back to a safe command.
"""
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Twist
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from rs_diffuser_ros.control.controller import Grid
from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes.risk_colors import normalise_risk, risk_rgb

# A unit quaternion's norm may drift by float rounding; anything further off is a bug upstream.
QUATERNION_NORM_TOLERANCE = 1e-3


class InvalidOdometry(ValueError):
    """An Odometry message the planner must not act on (NaN, inf, bad quaternion, wrong frame)."""


# --- orientation -------------------------------------------------------------------------

def yaw_from_quaternion(q: Quaternion) -> float:
    """Heading about +z of a (unit) quaternion, in (-pi, pi]."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def quaternion_from_yaw(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


# --- odometry <-> state[6] = [x, y, sin_yaw, cos_yaw, v, omega] ---------------------------

def odometry_to_state(msg: Odometry, expected_frame: str = "") -> np.ndarray:
    """The planner's state from an Odometry message; raises InvalidOdometry with the reason."""
    if expected_frame and msg.header.frame_id and msg.header.frame_id != expected_frame:
        raise InvalidOdometry(
            f"odometry header.frame_id is '{msg.header.frame_id}', the planner works in '{expected_frame}'")
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    fields = {
        "pose.pose.position.x": p.x, "pose.pose.position.y": p.y,
        "pose.pose.orientation.x": q.x, "pose.pose.orientation.y": q.y,
        "pose.pose.orientation.z": q.z, "pose.pose.orientation.w": q.w,
        "twist.twist.linear.x": lin.x, "twist.twist.angular.z": ang.z,
    }
    bad = [name for name, value in fields.items() if not math.isfinite(value)]
    if bad:
        raise InvalidOdometry(f"odometry has non-finite values in {', '.join(bad)}")
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise InvalidOdometry(f"odometry pose.pose.orientation is not a unit quaternion (norm {norm:.4f})")
    yaw = yaw_from_quaternion(q)
    return np.array([p.x, p.y, math.sin(yaw), math.cos(yaw), lin.x, ang.z], dtype=np.float32)


def state_to_odometry(state, stamp: Time, frame_id: str, child_frame_id: str) -> Odometry:
    """Odometry from a state [x, y, sin_yaw, cos_yaw, v, omega] (the simulation's obs[:6])."""
    x, y, sin_yaw, cos_yaw, v, omega = (float(s) for s in state[:6])
    msg = Odometry()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position = Point(x=x, y=y, z=0.0)
    msg.pose.pose.orientation = quaternion_from_yaw(math.atan2(sin_yaw, cos_yaw))
    # Velocities are in the child (body) frame: a differential drive moves along its +x.
    msg.twist.twist.linear.x = v
    msg.twist.twist.angular.z = omega
    return msg


# --- goal ----------------------------------------------------------------------------------

def pose_to_goal(msg: PoseStamped, expected_frame: str = "") -> np.ndarray:
    """Goal [x, y] from a PoseStamped (rviz2's "2D Goal Pose"); raises ValueError with the reason."""
    if expected_frame and msg.header.frame_id and msg.header.frame_id != expected_frame:
        raise ValueError(
            f"goal header.frame_id is '{msg.header.frame_id}', the planner works in '{expected_frame}' "
            "(no TF lookup here: send the goal in that frame)")
    x, y = msg.pose.position.x, msg.pose.position.y
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"goal pose.position is not finite ({x}, {y})")
    return np.array([x, y], dtype=np.float32)


def goal_to_pose(goal, stamp: Time, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.pose.position = Point(x=float(goal[0]), y=float(goal[1]), z=0.0)
    msg.pose.orientation = quaternion_from_yaw(0.0)
    return msg


# --- occupancy grid --------------------------------------------------------------------------

def grid_to_occupancy_msg(data, resolution: float, origin_x: float, origin_y: float,
                          stamp: Time, frame_id: str) -> OccupancyGrid:
    """nav_msgs/OccupancyGrid from an int8 [height, width] array (row = y, column = x)."""
    cells = np.asarray(data, dtype=np.int8)
    if cells.ndim != 2:
        raise ValueError(f"occupancy data must be 2-D [height, width], got shape {cells.shape}")
    msg = OccupancyGrid()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.info.resolution = float(resolution)
    msg.info.height, msg.info.width = int(cells.shape[0]), int(cells.shape[1])
    msg.info.origin.position = Point(x=float(origin_x), y=float(origin_y), z=0.0)
    msg.info.origin.orientation = quaternion_from_yaw(0.0)
    msg.data = cells.reshape(-1).tolist()
    return msg


def occupancy_msg_to_grid(msg: OccupancyGrid, what: str = "costmap"):
    """(data int8 [height, width], resolution, origin_x, origin_y) from a nav_msgs/OccupancyGrid;
    errors name the grid as `what`."""
    info = msg.info
    if info.width == 0 or info.height == 0:
        raise ValueError(f"{what} info.width/height is {info.width}x{info.height}: empty map")
    if len(msg.data) != info.width * info.height:
        raise ValueError(f"{what} data has {len(msg.data)} cells, info says {info.width}x{info.height}")
    if not (math.isfinite(info.resolution) and info.resolution > 0.0):
        raise ValueError(f"{what} info.resolution is {info.resolution}, must be > 0")
    origin = info.origin.position
    if not (math.isfinite(origin.x) and math.isfinite(origin.y)):
        raise ValueError(f"{what} info.origin.position is not finite ({origin.x}, {origin.y})")
    if abs(yaw_from_quaternion(info.origin.orientation)) > 1e-6:
        raise ValueError(f"{what} info.origin.orientation is rotated; only axis-aligned grids are supported")
    data = np.asarray(msg.data, dtype=np.int8).reshape(info.height, info.width)
    if data.size and (data.min() < -1 or data.max() > 100):
        raise ValueError(f"{what} data holds values in [{data.min()}, {data.max()}]; occupancy is -1 or 0..100")
    return data, float(info.resolution), float(origin.x), float(origin.y)


def costmap_msg_to_grid(msg: OccupancyGrid, expected_frame: str = "", what: str = "costmap") -> Grid:
    """The controller's Grid from a costmap (or the risk map, `what`="risk map"), after checking it is
    well-formed and in our frame."""
    if expected_frame and msg.header.frame_id and msg.header.frame_id != expected_frame:
        raise ValueError(f"{what} header.frame_id is '{msg.header.frame_id}', the planner works in '{expected_frame}'")
    return Grid(*occupancy_msg_to_grid(msg, what))


def stamp_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# --- planner outputs ---------------------------------------------------------------------

def plan_to_path(plan, stamp: Time, frame_id: str) -> Path:
    """nav_msgs/Path from a plan [H, 6] of states."""
    msg = Path()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    for state in np.asarray(plan, dtype=np.float64):
        pose = PoseStamped()
        pose.header = msg.header
        pose.pose.position = Point(x=float(state[0]), y=float(state[1]), z=0.0)
        pose.pose.orientation = quaternion_from_yaw(math.atan2(state[2], state[3]))
        msg.poses.append(pose)
    return msg


def path_to_xy(msg: Path) -> np.ndarray:
    return np.array([[p.pose.position.x, p.pose.position.y] for p in msg.poses], dtype=np.float64).reshape(-1, 2)


CANDIDATES_NAMESPACE = "candidates"


def candidates_to_markers(candidates, risk_values, chosen_index: int, stamp: Time, frame_id: str,
                          line_width: float = 0.03) -> MarkerArray:
    """One LINE_STRIP per candidate plan, coloured by its risk value (red worst .. green best).

    The first marker is a DELETEALL so candidates of an earlier, larger batch disappear. Each
    line's `text` (unused by rviz for line strips) carries its risk value, so the snapshot can
    draw an absolute colour bar from the same messages rviz gets.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    risk_values = np.asarray(risk_values, dtype=np.float64)
    if candidates.ndim != 3 or len(risk_values) != len(candidates):
        raise ValueError(f"candidates {candidates.shape} and risk_values {risk_values.shape} do not match")
    header = Header(stamp=stamp, frame_id=frame_id)
    markers = MarkerArray()
    markers.markers.append(Marker(header=header, ns=CANDIDATES_NAMESPACE, action=Marker.DELETEALL))
    colours = risk_rgb(normalise_risk(risk_values))
    for k, (plan, value, rgb) in enumerate(zip(candidates, risk_values, colours)):
        chosen = k == chosen_index
        marker = Marker(header=header, ns=CANDIDATES_NAMESPACE, id=k, type=Marker.LINE_STRIP,
                        action=Marker.ADD, text=f"{value:.6g}")
        marker.pose.orientation.w = 1.0
        marker.scale.x = line_width * (2.5 if chosen else 1.0)
        marker.color = ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=1.0 if chosen else 0.6)
        # Slightly above the map so the lines are not hidden by it; the chosen one on top.
        z = 0.02 if chosen else 0.01
        marker.points = [Point(x=float(s[0]), y=float(s[1]), z=z) for s in plan]
        markers.markers.append(marker)
    return markers


def candidate_markers_to_arrays(msg: MarkerArray):
    """(lines [K] of [H, 2], risk_values [K]) back from candidates_to_markers' output."""
    lines, values = [], []
    for marker in msg.markers:
        if marker.ns != CANDIDATES_NAMESPACE or marker.type != Marker.LINE_STRIP or marker.action != Marker.ADD:
            continue
        lines.append(np.array([[p.x, p.y] for p in marker.points], dtype=np.float64).reshape(-1, 2))
        values.append(float(marker.text) if marker.text else float("nan"))
    return lines, np.array(values, dtype=np.float64)


def plan_result_to_risk_plan(result, alpha: float, risk_mode: str, stamp: Time, frame_id: str) -> RiskPlan:
    """rs_diffuser_ros/RiskPlan from the core's PlanResult."""
    msg = RiskPlan()
    msg.header = Header(stamp=stamp, frame_id=frame_id)
    msg.alpha = float(alpha)
    msg.risk_mode = str(risk_mode)
    msg.risk_value = float(np.asarray(result.risk_values)[result.chosen_index])
    msg.expected_return = float(result.expected_return)
    msg.return_quantiles = [float(q) for q in np.asarray(result.quantiles).reshape(-1)]
    msg.num_candidates = int(len(result.risk_values))
    msg.planning_latency_ms = float(result.latency_ms)
    return msg


# --- velocity --------------------------------------------------------------------------------

def command_to_twist(v: float, omega: float) -> Twist:
    """Twist from the controller's command (already within the limits); non-finite -> ValueError."""
    if not (math.isfinite(v) and math.isfinite(omega)):
        raise ValueError(f"command is not finite (v={v}, omega={omega})")
    msg = Twist()
    msg.linear.x, msg.angular.z = float(v), float(omega)
    return msg


def twist_to_action(msg: Twist) -> np.ndarray:
    """Action [v, omega] from a Twist; non-finite values -> ValueError."""
    v, omega = msg.linear.x, msg.angular.z
    if not (math.isfinite(v) and math.isfinite(omega)):
        raise ValueError(f"cmd_vel linear.x / angular.z is not finite ({v}, {omega})")
    return np.array([v, omega], dtype=np.float32)
