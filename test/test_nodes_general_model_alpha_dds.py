"""The general (map-conditioned) model's planner node over real DDS, on a generated map it never saw: it reads
/costmap and /risk_map, and an alpha switch from 1.0 to 0.05 at run time (`ros2 param set`) moves its chosen plan
off the risky route.

The map is test-split seed MAP_SEED (risky_nav.mapgen.TEST_SEEDS, never used in training), a `tradeoff` rooms map:
the shortest route from the start region crosses a risky region (x 2.55 .. 4.65, the full height up to y 6.15)
through a door to the east, the risk-free detour goes north over the top of it. The probe publishes the map's
occupancy and hazard layers, latched, as the sim node does; the robot stands still at the start region's centre
facing the goal, and the planner's noise seed is fixed, so every replan at one alpha gives the same plan and a
change after the switch is the switch's doing. Driving the sim through the switch is not covered here.

This is a fixed-seed functional test of the switch, not a statistical claim (the statistics are in
docs/evaluation.md). The (map, seed) pair was picked offline for the general model before f1 (gpu19_joint),
through the same Controller the node drives (config/planner.yaml, the model's own sampling), from the robot at the
start region's centre facing the goal centre: over the 25 test-split trade-off maps and planner seeds 1..16 (400
pairs) the alpha = 1 plan entered a risky region and the alpha = 0.05 plan did not in 11 pairs, 7 of them on map
MAP_SEED. The shipped general model (g2 with 8 route candidates a way, 2026-12-02) splits there at every one of
seeds 1..16, and in 218 of the 400 pairs, on 18 of the 25 maps (`python -m rs_diffuser_ros.eval.first_plan_split`;
f1 before it: every seed there, 151 pairs, 16 maps).
"""
import math
import time

import numpy as np
import pytest
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from risky_nav import load_layout
from risky_nav.mapgen import TEST_SEEDS, generate_map
from risky_nav.occupancy import occupancy_grid, risk_grid

from rs_diffuser_ros.diagnostics.proposals import enters_risk
from rs_diffuser_ros.msg import RiskPlan
from rs_diffuser_ros.nodes import topics
from rs_diffuser_ros.nodes.conversions import grid_to_occupancy_msg
from rs_diffuser_ros.shipped import GENERAL_MODEL, model_path
from test_nodes_helpers import nodes, probe, ros_env, run_param  # noqa: F401
from test_nodes_planner_dds import odometry, planner_argv, plans_by_stamp, send_goal

pytestmark = pytest.mark.timeout(180)

MAP_SEED = 1_000_024  # gen1000024-rooms-tradeoff
PLANNER_SEED = 6
MIN_TURN_M = 1.0  # how far the alpha = 0.05 plan heads north (towards the detour) and the alpha = 1 plan east


@pytest.fixture
def unseen_map(tmp_path):
    """The map's layout, written to YAML from its seed and loaded back as any layout file is."""
    assert MAP_SEED in TEST_SEEDS, "a training map would not be one the model never saw"
    generated = generate_map(MAP_SEED)
    assert generated.kind == "tradeoff"
    path = tmp_path / f"{generated.layout.name}.yaml"
    path.write_text(generated.yaml_text())
    return load_layout(path)


def publish_latched(probe, nodes, topic, grid, what):
    publisher = probe.node.create_publisher(OccupancyGrid, topic, topics.LATCHED)
    publisher.publish(grid_to_occupancy_msg(grid.data, grid.resolution, grid.origin_x, grid.origin_y,
                                            probe.node.get_clock().now().to_msg(), "odom"))
    probe.wait_for(lambda: publisher.get_subscription_count() > 0, 90, f"the planner to subscribe to {what}", nodes)
    return publisher


def test_alpha_switch_moves_the_general_model_off_the_risky_route_on_a_map_it_never_saw(nodes, probe, ros_env,
                                                                                         unseen_map):
    if not model_path(GENERAL_MODEL).is_file():
        pytest.fail(f"the shipped general model {model_path(GENERAL_MODEL)} is missing")
    layout = unseen_map
    occupancy, risk = occupancy_grid(layout), risk_grid(layout)
    start = (layout.start_region.center_x, layout.start_region.center_y)
    goal = [layout.goal_region.center_x, layout.goal_region.center_y]
    yaw = math.atan2(goal[1] - start[1], goal[0] - start[0])

    # The general model (the parameter takes the shipped name, as `bringup --checkpoint general` passes it),
    # sampling as it was tuned (its own K and steps), collision check on.
    argv = planner_argv(None, alpha=1.0, seed=PLANNER_SEED, candidates=0, ddim_steps=0) + ["-p", "checkpoint:=general"]
    planner = nodes.start(argv, "planner")
    probe.record(Path, "plan")
    probe.record(RiskPlan, "risk_plan")
    probe.publish_periodically(Odometry, "odom", lambda: odometry(*start, yaw), 0.05)
    publish_latched(probe, nodes, topics.RISK_MAP, risk, "risk_map")
    publish_latched(probe, nodes, topics.COSTMAP, occupancy, "costmap")
    # Both layers in before the goal: until the risk layer arrives a map model plans with no risk known.
    probe.wait_for(lambda: "risk map received" in nodes.log(planner) and "costmap received" in nodes.log(planner),
                   30, "the planner to receive the risk map and the costmap", nodes)
    log = nodes.log(planner)
    assert GENERAL_MODEL in log and "map-conditioned" in log, "the planner did not say it plans on the map it receives"
    assert f"highest hazard {int(risk.data.max())}" in log, log[-3000:]
    send_goal(probe, goal, nodes)

    probe.wait_for(lambda: len(plans_by_stamp(probe, 0)) >= 3, 60, "plans at alpha = 1.0", nodes)
    neutral = plans_by_stamp(probe, 0)
    assert all(r.alpha == pytest.approx(1.0) for r, _ in neutral)
    for _, plan in neutral[1:]:
        np.testing.assert_allclose(plan, neutral[0][1], atol=1e-5, err_msg="same state and seed gave another plan")
    neutral_plan = neutral[0][1]
    assert enters_risk(neutral_plan[None], layout)[0], f"the alpha = 1 plan misses the risky region: {neutral_plan}"
    assert neutral_plan[-1, 0] - start[0] > MIN_TURN_M, "the alpha = 1 plan does not head east for the door"

    switch = run_param(ros_env, "set", "/planner", "alpha", "0.05")
    assert switch.returncode == 0, switch.stderr
    switched_at = time.monotonic()
    probe.wait_for(lambda: len([r for r, _ in plans_by_stamp(probe, switched_at) if r.alpha < 0.5]) >= 2, 30,
                   "plans at alpha = 0.05", nodes)
    averse = [(r, p) for r, p in plans_by_stamp(probe, switched_at) if r.alpha < 0.5]
    assert all(r.alpha == pytest.approx(0.05) and r.risk_mode == "averse" for r, _ in averse)
    for _, plan in averse[1:]:
        np.testing.assert_allclose(plan, averse[0][1], atol=1e-5, err_msg="same state and seed gave another plan")
    averse_plan = averse[-1][1]
    assert float(np.abs(averse_plan - neutral_plan).max()) > 1e-3, "the chosen plan did not change with alpha"
    assert not enters_risk(averse_plan[None], layout)[0], f"the alpha = 0.05 plan enters the risky region: {averse_plan}"
    # The other way: north towards the detour over the top of the region, not east like the alpha = 1 plan.
    assert averse_plan[:, 1].max() - start[1] > MIN_TURN_M, "the alpha = 0.05 plan does not head for the detour"
    assert averse_plan[-1, 0] < neutral_plan[-1, 0] - MIN_TURN_M
    assert planner.poll() is None, "the planner node died"
