"""Foundation smoke test: two rclpy nodes in separate processes exchange a RiskPlan over DDS.

This is the path every node of the package relies on: the generated message imports,
serialises through the Fast DDS RMW from the PyPI wheels, and crosses a process boundary.
"""
import json
import os
import random
import subprocess
import sys
import textwrap
import time

import pytest

PUBLISHER = textwrap.dedent(
    """
    import rclpy
    from rs_diffuser_ros.msg import RiskPlan
    rclpy.init()
    node = rclpy.create_node("smoke_publisher")
    pub = node.create_publisher(RiskPlan, "risk_plan_smoke", 10)
    msg = RiskPlan(alpha=0.05, risk_mode="averse", risk_value=-3.5, expected_return=1.25,
                   return_quantiles=[-10.0, 0.5, 2.0], num_candidates=32, planning_latency_ms=12.5)
    msg.header.frame_id = "odom"
    def tick():
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
    node.create_timer(0.05, tick)
    rclpy.spin(node)
    """
)

SUBSCRIBER = textwrap.dedent(
    """
    import json, sys, time
    import rclpy
    from rs_diffuser_ros.msg import RiskPlan
    rclpy.init()
    node = rclpy.create_node("smoke_subscriber")
    got = []
    node.create_subscription(RiskPlan, "risk_plan_smoke", got.append, 10)
    deadline = time.monotonic() + float(sys.argv[1])
    while len(got) < 3 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    m = got[-1] if got else None
    print(json.dumps(None if m is None else {
        "count": len(got), "alpha": m.alpha, "risk_mode": m.risk_mode, "risk_value": m.risk_value,
        "expected_return": m.expected_return, "return_quantiles": list(m.return_quantiles),
        "num_candidates": m.num_candidates, "planning_latency_ms": m.planning_latency_ms,
        "frame_id": m.header.frame_id, "stamp_sec": m.header.stamp.sec}))
    """
)


@pytest.fixture
def ros_env():
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 100))  # isolate from concurrent test runs
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def test_risk_plan_crosses_processes_over_dds(ros_env):
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=ros_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        sub = subprocess.run([sys.executable, "-c", SUBSCRIBER, "20"], env=ros_env,
                             capture_output=True, text=True, timeout=60)
    finally:
        pub.kill()
        pub.wait(timeout=10)
    assert sub.returncode == 0, sub.stderr
    received = json.loads(sub.stdout.strip().splitlines()[-1])
    assert received is not None, "no RiskPlan arrived from the publisher process within 20 s"
    assert received["count"] >= 3
    assert received["alpha"] == pytest.approx(0.05)
    assert received["risk_mode"] == "averse"
    assert received["risk_value"] == pytest.approx(-3.5)
    assert received["expected_return"] == pytest.approx(1.25)
    assert received["return_quantiles"] == pytest.approx([-10.0, 0.5, 2.0])
    assert received["num_candidates"] == 32
    assert received["planning_latency_ms"] == pytest.approx(12.5)
    assert received["frame_id"] == "odom"
    assert abs(received["stamp_sec"] - time.time()) < 120, "the stamp is not the publisher's clock now"
