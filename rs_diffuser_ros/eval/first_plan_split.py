"""Where does the first plan part with alpha? Per test-split trade-off map and planner seed, the plan the shipped
controller executes first from the start region's centre (at rest, facing the goal's centre) at a risk-neutral and
at a cautious alpha, and whether the first enters a risky region (as the evaluation counts it) while the second
stays out: the condition the general model's DDS alpha test (test/test_nodes_general_model_alpha_dds.py) was
picked by.

    python -m rs_diffuser_ros.eval.first_plan_split [--checkpoint general] [--seeds 16] [--alphas 1.0 0.05]

A functional probe of one state per map, not a statistic of episodes (docs/evaluation.md has those).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch


def split_seeds(planner, layout, seeds, alphas: tuple[float, float]) -> list[int]:
    """The planner seeds at which the first plan enters at alphas[0] and stays out at alphas[1]."""
    from rs_diffuser_ros.control import Controller, settings_from_yaml
    from rs_diffuser_ros.diagnostics.proposals import enters_risk
    from rs_diffuser_ros.eval.policies import published_grids

    occupancy, risk, severity = published_grids(layout)
    start = (layout.start_region.center_x, layout.start_region.center_y)
    goal = np.array([layout.goal_region.center_x, layout.goal_region.center_y], np.float32)
    yaw = math.atan2(goal[1] - start[1], goal[0] - start[0])
    state = np.array([*start, math.sin(yaw), math.cos(yaw), 0.0, 0.0], np.float32)
    found = []
    for seed in seeds:
        first = []
        for alpha in alphas:
            controller = Controller(planner, settings_from_yaml(alpha=alpha, seed=seed))
            controller.set_goal(goal)
            controller.on_costmap(occupancy, 0.0)
            controller.on_risk_map(risk, 0.0)
            controller.on_risk_severity_map(severity, 0.0)
            controller.watchdog.accept(state, 0.0)
            command = controller.step(0.0)
            first.append(None if command.plan is None else enters_risk(command.plan.plan[None], layout)[0])
        if first == [True, False]:  # a stop (no plan) at either alpha is not a split
            found.append(seed)
    return found


def main(argv=None) -> int:
    from risky_nav.mapgen import TEST_SEEDS, generate_map

    from rs_diffuser_ros.core.planner import RiskSensitivePlanner
    from rs_diffuser_ros.shipped import resolve_model

    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval.first_plan_split", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, default=resolve_model("general"), help="a map-conditioned model")
    ap.add_argument("--seeds", type=int, default=16, help="planner seeds 1..N per map")
    ap.add_argument("--alphas", type=float, nargs=2, default=[1.0, 0.05],
                    help="the alpha that should enter, then the one that should not")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(args.checkpoint, device="cpu")
    if not planner.map_conditioned:
        ap.error(f"{args.checkpoint} is a per-map model: it plans on one layout, not on the test maps")
    total = maps = 0
    for map_seed in TEST_SEEDS:
        generated = generate_map(map_seed)
        if generated.kind != "tradeoff":
            continue
        seeds = split_seeds(planner, generated.layout, range(1, args.seeds + 1), tuple(args.alphas))
        maps += 1
        total += len(seeds)
        print(f"{generated.layout.name}: {len(seeds)} of {args.seeds} seeds {seeds}", flush=True)
    print(f"{total} of {maps * args.seeds} (map, seed) pairs: the alpha = {args.alphas[0]:g} plan enters, "
          f"the alpha = {args.alphas[1]:g} plan stays out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
