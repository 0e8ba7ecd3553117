"""Topic names and QoS the nodes, the snapshot and config/nav.rviz agree on.

Names are relative, so a namespace moves them all.
"""
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

ODOM = "odom"
COSTMAP = "costmap"
RISK_MAP = "risk_map"  # hazard 0..100 per cell, as Nav2 publishes costmap filter masks
RISK_SEVERITY_MAP = "risk_severity_map"  # the risk map's severity 0..100 per cell (one event's size), the same way
GOAL = "goal_pose"  # what rviz2's "2D Goal Pose" tool publishes
CMD_VEL = "cmd_vel"
PLAN = "plan"
CANDIDATES = "candidate_plans"
RISK_PLAN = "risk_plan"
RISKY_REGIONS = "risky_regions"
SIM_EVENTS = "sim_events"
PLANNER_STATUS = "planner_status"  # the controller's stop reason, like Nav2's controller result codes

# Odometry into the planner: only the newest state matters to a replanning controller, so keep
# one message (a flood cannot queue up stale states) and take it best effort (matches reliable
# and best-effort odometry publishers alike).
ODOM_IN = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
# Published once and kept for late subscribers (map_server's convention): costmap, risk map, risky regions.
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
# The event log keeps its recent history too: the "start" event goes out before anyone listens.
EVENTS = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
