"""Soak run: sim + planner as separate processes for a long simulated drive, faster than real time.

Goals alternate between the task's start and goal: each time the sim reports `goal_reached`
(or a leg takes longer than --leg-timeout simulated seconds) the other end is sent on
/goal_pose, which both nodes follow. Every few seconds the resident memory (RSS) of both
node processes is sampled; every RiskPlan gives the replan latency, and a replan longer
than the replan period (1 / replan_rate_hz, wall clock) is a missed deadline. Writes a
Markdown report with the numbers.

    ./run.sh python tools/soak.py --sim-minutes 10 --real-time-factor 2 --replan-rate 5 \
        --report docs/soak_report.md
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from ament_index_python.packages import get_package_share_directory
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.standin.bringup import PACKAGE, node_command
from rs_diffuser_ros.nodes.conversions import goal_to_pose

CONTROL_PERIOD_S = 0.1  # one sim step = one /odom message
START, GOAL = (1.5, 4.0, 0.0), (10.5, 4.0)  # default layout: the short route crosses the risky passage


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MB (from /proc; NaN once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


class Listener:
    """Records what the soak report needs, on its own rclpy context and thread."""

    def __init__(self, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("soak_listener", context=self.context, start_parameter_services=False)
        self.lock = threading.Lock()
        self.odom_count = 0
        self.events, self.latencies_ms, self.cmd_times = [], [], []
        self.node.create_subscription(Odometry, topics.ODOM, self._on_odom, 10)
        self.node.create_subscription(String, topics.SIM_EVENTS, self._on_event, topics.EVENTS)
        self.node.create_subscription(RiskPlan, topics.RISK_PLAN, self._on_risk_plan, 10)
        self.node.create_subscription(Twist, topics.CMD_VEL, self._on_cmd, 10)
        self.goal_pub = self.node.create_publisher(PoseStamped, topics.GOAL, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shut down under us
                break

    def _on_odom(self, _msg):
        with self.lock:
            self.odom_count += 1

    def _on_event(self, msg):
        with self.lock:
            self.events.append((time.monotonic(), json.loads(msg.data)))

    def _on_risk_plan(self, msg):
        with self.lock:
            self.latencies_ms.append((time.monotonic(), float(msg.planning_latency_ms)))

    def _on_cmd(self, _msg):
        with self.lock:
            self.cmd_times.append(time.monotonic())

    def sim_seconds(self) -> float:
        with self.lock:
            return self.odom_count * CONTROL_PERIOD_S

    def send_goal(self, goal):
        self.goal_pub.publish(goal_to_pose(goal, self.node.get_clock().now().to_msg(), "odom"))

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def slope_mb_per_min(samples):
    """Least-squares slope of RSS over wall time, MB/min."""
    t = np.array([s[0] for s in samples]) / 60.0
    y = np.array([s[1] for s in samples])
    ok = np.isfinite(y)
    return float(np.polyfit(t[ok], y[ok], 1)[0]) if ok.sum() >= 3 else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim-minutes", type=float, default=10.0)
    parser.add_argument("--real-time-factor", type=float, default=2.0)
    parser.add_argument("--replan-rate", type=float, default=5.0, help="planner replan_rate_hz (wall clock)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--leg-timeout", type=float, default=90.0, help="simulated s before a goal is re-issued")
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling period, wall s")
    parser.add_argument("--planner-param", action="append", default=[])
    parser.add_argument("--report", type=Path, default=Path("docs/soak_report.md"))
    parser.add_argument("--log-dir", type=Path, default=Path("runs/soak"))
    args = parser.parse_args(argv)

    domain = random.randint(120, 230)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    share = Path(get_package_share_directory(PACKAGE)) / "config"
    planner_params = [f"alpha:={args.alpha}", f"replan_rate_hz:={args.replan_rate}", "torch_threads:=1", "device:=cpu",
                      *args.planner_param]
    sim_params = [f"real_time_factor:={args.real_time_factor}", "seed:=3", f"start:={list(START)}",
                  f"goal:={list(GOAL)}"]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    listener = Listener(domain)
    procs = {}
    for name, exe, params in (("sim", "sim_node", sim_params), ("planner", "planner_node", planner_params)):
        log = open(args.log_dir / f"{name}.log", "wb")
        procs[name] = subprocess.Popen(node_command(exe, share / f"{name}.yaml", params), env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
    print(f"soak: domain {domain}, sim pid {procs['sim'].pid}, planner pid {procs['planner'].pid}; "
          f"logs in {args.log_dir}", flush=True)

    period_s = 1.0 / args.replan_rate
    rss = {name: [] for name in procs}
    legs = []  # (target, sim start, sim end, how it ended)
    target, other = GOAL, START[:2]
    leg_started = 0.0
    seen_events = 0
    died = None
    wall_start, sim_start = time.monotonic(), 0.0
    try:
        # Measure from the first replan on: start-up (imports, model load) is not the steady state.
        deadline = time.monotonic() + 120.0
        while not listener.latencies_ms and time.monotonic() < deadline and all(
                p.poll() is None for p in procs.values()):
            time.sleep(0.1)
        wall_start = next_sample = time.monotonic()
        sim_start = listener.sim_seconds()
        while listener.sim_seconds() - sim_start < args.sim_minutes * 60.0:
            now = time.monotonic()
            for name, proc in procs.items():
                if proc.poll() is not None:
                    died = f"{name} exited with status {proc.returncode}"
            if died:
                break
            if now >= next_sample:
                for name, proc in procs.items():
                    rss[name].append((now - wall_start, rss_mb(proc.pid)))
                next_sample += args.sample_every
            sim_now = listener.sim_seconds()
            with listener.lock:
                new_events = listener.events[seen_events:]
                seen_events = len(listener.events)
            reached = any(e["event"] == "goal_reached" for _, e in new_events)
            if reached or sim_now - leg_started > args.leg_timeout:
                legs.append((target, leg_started, sim_now, "reached" if reached else "timed out"))
                target, other = other, target
                leg_started = sim_now
                listener.send_goal(target)
                print(f"soak: {sim_now:6.1f} sim s, leg {len(legs)} {legs[-1][3]}; next goal {target}", flush=True)
            time.sleep(0.2)
    finally:
        wall_s = time.monotonic() - wall_start
        sim_s = listener.sim_seconds() - sim_start
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        listener.close()

    report = write_report(args, listener, rss, legs, sim_s, wall_s, period_s, died)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    print(report)
    return 1 if died else 0


def write_report(args, listener, rss, legs, sim_s, wall_s, period_s, died) -> str:
    latencies = np.array([ms for _, ms in listener.latencies_ms])
    lat_times = np.array([t for t, _ in listener.latencies_ms])
    missed = latencies > period_s * 1e3
    # Drift: missed deadlines and median latency per quarter of the run.
    quarters = []
    if len(latencies):
        edges = np.linspace(lat_times.min(), lat_times.max() + 1e-9, 5)
        for q in range(4):
            inside = (lat_times >= edges[q]) & (lat_times < edges[q + 1])
            quarters.append((int(inside.sum()), int(missed[inside].sum()),
                             float(np.median(latencies[inside])) if inside.any() else float("nan")))
    cmd_gaps = np.diff(np.array(listener.cmd_times)) if len(listener.cmd_times) > 1 else np.array([])
    kinds = {}
    for _, event in listener.events:
        kinds[event["event"]] = kinds.get(event["event"], 0) + 1
    reached = sum(1 for leg in legs if leg[3] == "reached")
    planner_log = (args.log_dir / "planner.log").read_text(errors="replace")
    lines = [
        "# Soak report",
        "",
        f"Made by `tools/soak.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): sim + planner nodes as "
        "separate processes over DDS (loopback), default layout, shipped model on CPU (`torch_threads` 1), "
        f"alpha {args.alpha:g}, goals alternating between {list(START[:2])} and {list(GOAL)}.",
        "",
        f"Command: `./run.sh python tools/soak.py --sim-minutes {args.sim_minutes:g} --real-time-factor "
        f"{args.real_time_factor:g} --replan-rate {args.replan_rate:g}"
        + "".join(f" --planner-param {p}" for p in args.planner_param) + "`",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| simulated time (from the first replan) | {sim_s:.0f} s ({sim_s / 60:.1f} min) |",
        f"| wall time | {wall_s:.0f} s (achieved real-time factor {sim_s / max(wall_s, 1e-9):.2f}, asked "
        f"{args.real_time_factor:g}) |",
        f"| replan rate / deadline | {args.replan_rate:g} Hz wall / {period_s * 1e3:.0f} ms "
        f"(= {period_s * args.real_time_factor:.2f} s simulated between replans) |",
        f"| replans (RiskPlan messages) | {len(latencies)} ({len(latencies) / max(wall_s, 1e-9):.2f} per wall s) |",
        f"| missed deadlines (latency > {period_s * 1e3:.0f} ms) | {int(missed.sum())} "
        f"({100 * missed.mean() if len(missed) else 0:.1f} %) |",
        f"| replan latency p50 / p99 / max | {np.percentile(latencies, 50):.0f} / {np.percentile(latencies, 99):.0f} "
        f"/ {latencies.max():.0f} ms |" if len(latencies) else "| replan latency | none received |",
        f"| /cmd_vel gap p50 / p99 / max | {np.percentile(cmd_gaps, 50) * 1e3:.0f} / "
        f"{np.percentile(cmd_gaps, 99) * 1e3:.0f} / {cmd_gaps.max() * 1e3:.0f} ms |" if len(cmd_gaps) else
        "| /cmd_vel gaps | none |",
        f"| goals reached / legs | {reached} / {len(legs)} ({len(legs) - reached} re-issued after "
        f"{args.leg_timeout:g} simulated s) |",
        f"| sim events | {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))} |",
        f"| planner log: zero-velocity warnings / failed replans | {planner_log.count('zero velocity:')} / "
        f"{planner_log.count('replan failed')} |",
        f"| node exited during the run | {died or 'no'} |",
        "",
        "Memory (RSS, MB; slope by least squares over the whole run and over its second half):",
        "",
        "| process | start | end | max | slope (MB/min) | slope, 2nd half (MB/min) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, samples in rss.items():
        values = np.array([v for _, v in samples])
        half = samples[len(samples) // 2:]
        lines.append(f"| {name} | {values[0]:.1f} | {values[-1]:.1f} | {np.nanmax(values):.1f} | "
                     f"{slope_mb_per_min(samples):+.3f} | {slope_mb_per_min(half):+.3f} |")
    lines += ["", "Deadline drift (the run in four equal wall-clock quarters):", "",
              "| quarter | replans | missed | latency p50 (ms) |", "| --- | --- | --- | --- |"]
    lines += [f"| {q + 1} | {n} | {m} | {p50:.0f} |" for q, (n, m, p50) in enumerate(quarters)]
    lines += ["", "Legs (target, simulated start -> end, outcome):", ""]
    lines += [f"- {list(map(float, t))}: {a:.1f} -> {b:.1f} s, {how}" for t, a, b, how in legs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
