"""Does a map model's critic put the risk on the route that crosses it? The same candidate plans scored with
the layout's risk layer and with an empty one, split into the way round and the short cut (route_choice).

    python -m rs_diffuser_ros.diagnostics.risk_layer_effect --checkpoint runs/route7clean1000/model.safetensors \
        --layout default --seeds 8

A critic that trades risk lowers the short cut's CVaR_alpha when the risk layer is there and leaves the way
round about as it was; one that lowers both alike has learned "a map with risk is worse", not "this route is".
The plans are scored through plan_batch's `carried` row with one candidate per call, so the critic, its map
input and its risk measure are exactly the planner's.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.diagnostics.route_choice import goes_round, layout_start
from rs_diffuser_ros.shipped import resolve_model


def critic_values(planner: RiskSensitivePlanner, state, goal, plans: np.ndarray, map_input: PlanningMap,
                  alpha: float) -> np.ndarray:
    """rho_alpha of each plan [N, H, D] (world, all starting at `state`) under `map_input`, as the planner scores it."""
    n = len(plans)
    out = planner.plan_batch(np.repeat(state[None], n, 0), np.repeat(goal[None], n, 0), alpha=alpha, candidates=1,
                             seed=0, map_input=map_input, carried=plans)
    return np.array([o.risk_values[0] for o in out])


def placed(state: np.ndarray, xy, heading: float) -> np.ndarray:
    """`state` moved to xy (metres), facing `heading` (radians), at rest: a start the env's reset would not give."""
    out = np.array(state, dtype=np.float32)
    out[:2] = xy
    out[2:4] = np.sin(heading), np.cos(heading)
    out[4:] = 0.0
    return out


def effect_at_start(planner, layout: str, seed: int, candidates: int, alpha: float, margin_m: float,
                    start_xy=None, heading: float = 0.0) -> dict:
    start = layout_start(layout, seed, planner.state_dim)
    state, goal = start.state, start.goal
    if start_xy is not None:
        state = placed(state, start_xy, heading)
    empty = dataclasses.replace(start.risk, data=np.zeros_like(start.risk.data))
    maps = {"risk": start.model_map(planner),
            "none": PlanningMap.from_grids(start.occupancy, empty, safe_distance=planner.config.model.map_safe_distance,
                                           passable_clearance_m=planner.config.model.map_passable_clearance_m)}
    scale = planner.config.planner.guidance_scale
    planner.configure(guidance_scale=0.0)  # proposals from the model alone, scored below
    try:
        proposed = planner.plan_batch(state[None], goal[None], alpha=alpha, candidates=candidates, seed=seed,
                                      map_input=maps["risk"])[0]
        values = {name: critic_values(planner, state, goal, proposed.candidates, m, alpha) for name, m in maps.items()}
    finally:
        planner.configure(guidance_scale=scale)
    if not np.allclose(values["risk"], proposed.risk_values, atol=1e-3):  # the carried row must score as sampled
        raise RuntimeError("carried plans scored differently from the same plans sampled: "
                           f"max difference {np.abs(values['risk'] - proposed.risk_values).max():.3g}")
    round_ = goes_round(proposed.candidates, start.fields, start.split_map, margin_m)
    drop = values["risk"] - values["none"]
    mean = lambda v, mask: float(v[mask].mean()) if mask.any() else float("nan")  # noqa: E731
    return {"seed": seed, "start": state[:2], "round_share": float(round_.mean()),
            "drop_short": mean(drop, ~round_), "drop_round": mean(drop, round_),
            "value_short": mean(values["risk"], ~round_), "value_round": mean(values["risk"], round_)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.diagnostics.risk_layer_effect",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, default=resolve_model("general"), help="a map-conditioned model")
    ap.add_argument("--layout", default="default", help="shipped layout name or layout YAML")
    ap.add_argument("--seeds", type=int, default=8, help="starts: env reset seeds 1000, 1001, ...")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=256)
    ap.add_argument("--alpha", type=float, default=0.1, help="CVaR level of the critic's values")
    ap.add_argument("--margin-m", type=float, default=0.5, help="as route_choice: metres more gained on the safe distance")
    ap.add_argument("--start", type=float, nargs=2, metavar=("X", "Y"), default=None,
                    help="start every seed here (metres, at rest) instead of the env's reset: e.g. just before a risky "
                         "region, so the short cut's tail lies inside the critic's window; the seed still sets the goal")
    ap.add_argument("--heading", type=float, default=0.0, help="with --start: the heading in radians (0 = +x)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(args.checkpoint, device="cpu")
    if not planner.map_conditioned:
        raise SystemExit(f"{args.checkpoint} is a per-map model: it reads no risk layer, so there is nothing to take away")
    print(f"{args.checkpoint} on {args.layout}, K = {args.candidates}, CVaR_{args.alpha:g} of the critic (return units)")
    print("| start (seed) | share going round | risk layer's effect: short cut / round | with it: short cut / round |")
    print("|---|---|---|---|")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = effect_at_start(planner, args.layout, seed, args.candidates, args.alpha, args.margin_m, args.start, args.heading)
        rows.append(r)
        print(f"| {seed} | {100 * r['round_share']:.1f} % | {r['drop_short']:+.2f} / {r['drop_round']:+.2f} | "
              f"{r['value_short']:.2f} / {r['value_round']:.2f} |", flush=True)
    avg = {k: float(np.nanmean([r[k] for r in rows])) for k in ("drop_short", "drop_round", "value_short", "value_round")}
    print(f"| mean | | {avg['drop_short']:+.2f} / {avg['drop_round']:+.2f} | {avg['value_short']:.2f} / {avg['value_round']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
