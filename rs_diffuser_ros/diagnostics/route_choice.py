"""Which route do a model's candidate plans take from a layout's start, and which does its critic prefer?

    python -m rs_diffuser_ros.diagnostics.route_choice --checkpoint general --layout default \
        [--candidates 512] [--seed 1000] [--alphas 0.1 1.0]

From the layout's start (the env reset with --seed) the planner samples K candidates, unguided and then
guided at each alpha, and scores them as the planner does. A candidate *goes round* when its window
gains more on the way round risk than on the shortest way to the goal (the safe and plain goal distance
fields of core/map_input.py, at the window's first and last positions, differ by more than --margin-m):
the split needs no knowledge of the layout beyond its maps, so it works on any map with a detour.

Per setting it prints the share of candidates that go round, the mean of the critic's risk value
(CVaR_alpha; the mean at alpha 1) over each group, and how many of the best-scoring candidates go
round. A model that trades risk proposes the detour often enough and ranks it first at a low alpha;
docs/method_choices.md ("Why the general models take the short cut") reads these numbers.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
import torch

from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.shipped import resolve_model

TOP = 8  # best-scoring candidates inspected per setting


def goes_round(plans: np.ndarray, fields: torch.Tensor, planning_map: PlanningMap, margin_m: float) -> np.ndarray:
    """plans [K, H, >=2] in world metres, fields [>=2, h, w] (plain, safe goal distance, ...) -> bool [K]: the window
    gains more than margin_m more on the safe distance than on the plain one."""
    ends = torch.as_tensor(np.stack([plans[:, 0, :2], plans[:, -1, :2]], 1).reshape(-1, 2), dtype=torch.float32)
    rc, _ = planning_map.cells_on_map(ends)  # clamped onto the map: a point off it reads the edge cell
    values = fields[:2, rc[:, 0], rc[:, 1]].reshape(2, -1, 2)  # [field, K, first/last]
    gain = (values[..., 0] - values[..., 1]).numpy()  # metres gained on each field
    return gain[1] - gain[0] > margin_m


@dataclass
class LayoutStart:
    """A layout's start (the env reset with `seed`), its maps, and what the route split needs."""

    state: np.ndarray
    goal: np.ndarray
    occupancy: object  # risky_nav OccupancyGrid of the walls
    risk: object  # ... and of the hazard levels
    severity: object  # ... and of the severity levels
    split_map: PlanningMap  # both goal distance fields (safe_distance=True), for goes_round
    fields: torch.Tensor  # [2, h, w] plain and safe goal distance to `goal`
    built: dict = field(default_factory=dict)  # model_map's maps by (safe distance, clearance): built once each

    def model_map(self, planner: RiskSensitivePlanner) -> PlanningMap | None:
        """What `planner` plans on here: None for a per-map model, else the map with the model's own setting."""
        if not planner.map_conditioned:
            return None
        m = planner.config.model
        same_cells = m.map_passable_clearance_m == self.split_map.layers.passable_clearance_m  # its fields' cells
        if same_cells and m.map_safe_distance:
            return self.split_map
        key = (m.map_safe_distance, m.map_passable_clearance_m)
        if key not in self.built:
            self.built[key] = (PlanningMap(self.split_map.layers, safe_distance=False) if same_cells else
                               PlanningMap.from_grids(self.occupancy, self.risk, severity_grid=self.severity,
                                                      safe_distance=m.map_safe_distance,
                                                      passable_clearance_m=m.map_passable_clearance_m))
        return self.built[key]


def layout_start(layout: str, seed: int, state_dim: int) -> LayoutStart:
    from risky_nav.env import RiskyNavEnv  # the sim is only needed for the start state and the maps
    from risky_nav.occupancy import occupancy_grid, risk_grid, severity_grid

    env = RiskyNavEnv(layout)
    obs, _ = env.reset(seed=seed)
    env.close()
    state, goal = obs[:state_dim], obs[state_dim:state_dim + 2]
    occupancy, risk, severity = occupancy_grid(env.layout), risk_grid(env.layout), severity_grid(env.layout)
    split_map = PlanningMap.from_grids(occupancy, risk, safe_distance=True, severity_grid=severity)
    fields = split_map.distance_fields(torch.as_tensor(goal[None], dtype=torch.float32))[0]
    return LayoutStart(state, goal, occupancy, risk, severity, split_map, fields)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.diagnostics.route_choice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, default=resolve_model(""), help="model file or shipped name")
    ap.add_argument("--layout", default="default", help="shipped layout name or layout YAML")
    ap.add_argument("--seed", type=int, default=1000, help="env reset seed: the start state")
    ap.add_argument("--candidates", type=int, default=512)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.1, 1.0], help="averse alphas of the guided settings")
    ap.add_argument("--margin-m", type=float, default=0.5, help="metres more gained on the safe distance to count as round")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(args.checkpoint, device="cpu")
    start = layout_start(args.layout, args.seed, planner.state_dim)
    state, goal, map_input = start.state, start.goal, start.model_map(planner)
    print(f"{args.checkpoint} on {args.layout}, start {np.round(state[:2], 2).tolist()} -> goal {np.round(goal, 2).tolist()}, "
          f"K = {args.candidates}")
    print("| setting | share going round | risk value: round / short cut | of the best %d by score: round |" % TOP)
    print("|---|---|---|---|")
    scale = planner.config.planner.guidance_scale
    for label, alpha, guidance in [("unguided, CVaR_0.1", 0.1, 0.0)] + [(f"averse:{a:g}", a, scale) for a in args.alphas]:
        planner.configure(guidance_scale=guidance)
        r = planner.plan_batch(state[None], goal[None], alpha=alpha, candidates=args.candidates, seed=args.seed,
                               map_input=map_input)[0]
        round_ = goes_round(r.candidates, start.fields, start.split_map, args.margin_m)
        mean = lambda mask: f"{r.risk_values[mask].mean():.2f}" if mask.any() else "-"  # noqa: E731
        best = np.argsort(-r.scores)[:TOP]
        print(f"| {label} | {round_.mean() * 100:.1f} % | {mean(round_)} / {mean(~round_)} | {int(round_[best].sum())} of {TOP} |")
    planner.configure(guidance_scale=scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
