"""`snapshot`: subscribes to the topics rviz shows and renders them to a PNG, headless.

The robot's path while the snapshot listened is drawn too (rviz2's Odometry display keeps
its last arrows the same way), so `--after S` shows S seconds of driving.

Waits until the map, the risk map, odometry, plan, candidate plans and risky regions have all arrived
(the plan and the candidates from the same replan), or until --timeout, then draws them
with snapshot_render. Exit status 0 when everything arrived, 1 when something was missing
(the PNG is still written with what did arrive, and the missing topics are named).

    snapshot --output runs/snapshot.png --after 5
"""
import argparse
import os
import sys
import time
from pathlib import Path

import rclpy
import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path as PathMsg
from visualization_msgs.msg import Marker, MarkerArray

from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import (candidate_markers_to_arrays, occupancy_msg_to_grid, path_to_xy,
                                               yaw_from_quaternion)
from rs_diffuser_ros.standin.snapshot_render import Region, Scene, render_scene

REQUIRED = ("costmap", "risk_map", "odom", "plan", "candidates", "risky_regions")


def markers_to_regions(msg: MarkerArray):
    """Risky-region shapes from the sim's markers (CYLINDER -> circle, CUBE -> box), with their text labels."""
    regions = []
    labels = [m for m in msg.markers if m.action == Marker.ADD and m.type == Marker.TEXT_VIEW_FACING]
    for marker in msg.markers:
        if marker.action != Marker.ADD or marker.type not in (Marker.CYLINDER, Marker.CUBE):
            continue
        p, c = marker.pose.position, marker.color
        rgba = (c.r, c.g, c.b, c.a if c.a > 0 else 0.4)
        label = next((t.text for t in labels if t.id == marker.id), "")
        if marker.type == Marker.CYLINDER:
            regions.append(Region("circle", p.x, p.y, (marker.scale.x, marker.scale.y), rgba=rgba, label=label))
        else:
            regions.append(Region("box", p.x, p.y, (marker.scale.x, marker.scale.y),
                                  yaw=yaw_from_quaternion(marker.pose.orientation), rgba=rgba, label=label))
    return regions


class TopicCollector:
    """Keeps the latest message of each topic the picture needs."""

    def __init__(self, node):
        self.latest = {}
        self.trail = []  # every odometry position received: the path driven while listening
        subscriptions = [
            (OccupancyGrid, topics.COSTMAP, "costmap", topics.LATCHED),
            (OccupancyGrid, topics.RISK_MAP, "risk_map", topics.LATCHED),
            (MarkerArray, topics.RISKY_REGIONS, "risky_regions", topics.LATCHED),
            (Odometry, topics.ODOM, "odom", 10),
            (PathMsg, topics.PLAN, "plan", 10),
            (MarkerArray, topics.CANDIDATES, "candidates", 10),
            (RiskPlan, topics.RISK_PLAN, "risk_plan", 10),
            (PoseStamped, topics.GOAL, "goal", 10),
        ]
        for msg_type, topic, key, qos in subscriptions:
            node.create_subscription(msg_type, topic, lambda msg, key=key: self._keep(key, msg), qos)

    def _keep(self, key, msg) -> None:
        self.latest[key] = msg
        if key == "odom":
            self.trail.append((msg.pose.pose.position.x, msg.pose.pose.position.y))

    def missing(self):
        return [key for key in REQUIRED if key not in self.latest]

    def plan_matches_candidates(self) -> bool:
        plan, candidates = self.latest.get("plan"), self.latest.get("candidates")
        if plan is None or candidates is None or not candidates.markers:
            return False
        return plan.header.stamp == candidates.markers[-1].header.stamp

    def scene(self) -> Scene:
        scene, got = Scene(), self.latest
        if "costmap" in got:
            scene.occupancy, scene.resolution, x0, y0 = occupancy_msg_to_grid(got["costmap"])
            scene.origin = (x0, y0)
        if "risk_map" in got:
            scene.risk_map, scene.risk_resolution, x0, y0 = occupancy_msg_to_grid(got["risk_map"], "risk map")
            scene.risk_origin = (x0, y0)
        if "risky_regions" in got:
            scene.regions = markers_to_regions(got["risky_regions"])
        if "odom" in got:
            pose = got["odom"].pose.pose
            scene.robot = (pose.position.x, pose.position.y, yaw_from_quaternion(pose.orientation))
            scene.trail = np.array(self.trail)
        if "goal" in got:
            scene.goal = (got["goal"].pose.position.x, got["goal"].pose.position.y)
        if "plan" in got:
            scene.plan = path_to_xy(got["plan"])
        if "candidates" in got:
            scene.candidates, scene.risk_values = candidate_markers_to_arrays(got["candidates"])
        if "risk_plan" in got:
            r = got["risk_plan"]
            scene.title = (f"risk_mode={r.risk_mode}  alpha={r.alpha:.3g}  chosen rho_alpha={r.risk_value:.3g}  "
                           f"E[return]={r.expected_return:.3g}\nK={r.num_candidates} candidates, "
                           f"{r.planning_latency_ms:.0f} ms/replan")
        return scene


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "--out", "-o", type=Path, default=Path("snapshot.png"))
    parser.add_argument("--timeout", type=float, default=20.0, help="give up waiting after this many seconds")
    parser.add_argument("--after", type=float, default=0.0,
                        help="keep listening at least this long, then draw the latest messages")
    parser.add_argument("--title", default="", help="text prepended to the title")
    args, ros_args = parser.parse_known_args(argv)

    rclpy.init(args=[sys.argv[0], *ros_args])
    node = rclpy.create_node(f"snapshot_{os.getpid()}", start_parameter_services=False)
    collector = TopicCollector(node)
    start = time.monotonic()
    try:
        while time.monotonic() - start < args.timeout:
            rclpy.spin_once(node, timeout_sec=0.05)
            waited_enough = time.monotonic() - start >= args.after
            if waited_enough and not collector.missing() and collector.plan_matches_candidates():
                break
        scene = collector.scene()
        scene.title = "\n".join(t for t in (args.title, scene.title) if t)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        render_scene(scene, args.output)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    missing = collector.missing()
    if missing:
        print(f"snapshot: wrote {args.output}, but nothing arrived on: "
              + ", ".join(f"{key} ({_topic_of(key)})" for key in missing), file=sys.stderr)
        return 1
    print(f"snapshot: wrote {args.output}")
    return 0


def _topic_of(key: str) -> str:
    return {"costmap": topics.COSTMAP, "risk_map": topics.RISK_MAP, "odom": topics.ODOM, "plan": topics.PLAN,
            "candidates": topics.CANDIDATES, "risky_regions": topics.RISKY_REGIONS}[key]


if __name__ == "__main__":
    sys.exit(main())
