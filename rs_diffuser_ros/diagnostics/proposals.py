"""Where a map model's candidate plans go from the states a dataset's episodes passed through, and which one its
critic picks: does the denoiser propose the way round where the data went round, and stay out where the data stayed out?

    python -m rs_diffuser_ros.diagnostics.proposals --checkpoint general \
        --dataset datasets/riskynav/val10x40-v0 --map gen0009000-rooms-tradeoff [--alpha 0.1] [--candidates 32]

From each crossing episode's state LEAD steps before its first step in a risky region, and from each keep-out
episode's state at step T, the planner samples K candidates (guided at --alpha, as the controller plans) on the
map's costmap and risk layer. A candidate *enters* when any of its states lies in a risky region of the layout. Per
row: the share of candidates that enter, the critic's mean CVaR_alpha of those that enter and of those that stay out,
and how often the chosen candidate stays out; for a model with a route label (model.route_label), also the share
entering among the candidates asked to stay out (label 0) and among those asked to go through (label 1). A model that
can trade risk proposes staying out where the keep-out
episodes did, and its critic picks it at a low alpha from the crossing episodes' states before the routes part
(docs/method_choices.md, "Risk-event relabelling and the route risk").
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import load_dataset_episodes, load_dataset_layouts
from rs_diffuser_ros.shipped import resolve_model

LEADS = (40, 30, 20, 10)  # steps (0.1 s) before a crossing episode entered
TIMES = (10, 25, 40)  # steps into a keep-out episode


def enters_risk(plans: np.ndarray, layout) -> np.ndarray:
    """plans [K, H, >= 2] world metres -> bool [K]: some state lies in a risky region of `layout`."""
    from risky_nav.risk_exposure import region_exposure

    k, h = plans.shape[:2]
    p, _ = region_exposure(layout, plans[..., :2].reshape(-1, 2))
    return (p > 0).any(1).reshape(k, h).any(1)


def layout_planning_map(planner: RiskSensitivePlanner, layout) -> PlanningMap:
    """The costmap and risk layers a map model plans on for a risky_nav layout, as the sim node publishes them."""
    from risky_nav.occupancy import occupancy_grid, risk_grid, severity_grid

    return PlanningMap.from_grids(occupancy_grid(layout), risk_grid(layout),
                                  safe_distance=planner.config.model.map_safe_distance,
                                  passable_clearance_m=planner.config.model.map_passable_clearance_m,
                                  severity_grid=severity_grid(layout))


def probe(planner: RiskSensitivePlanner, planning_map: PlanningMap, layout, episodes, alpha: float = 0.1,
          candidates: int = 32, seed: int = 0, leads=LEADS, times=TIMES) -> list[dict]:
    """One dict per row: kind ("crossing" or "keep-out"), step (LEAD before entering, or T in), states, entering
    (share of candidates), cvar_entering, cvar_out (NaN when none), picked_out (share of states whose pick stays out),
    both (states offering both kinds), prefers_out (among those, the share whose best candidate staying out scores
    above the best entering one: the critic's choice where it has one; the pooled means above mix states),
    entering_label0 / entering_label1 (a model with a route label: the share among the first K - K // 2 candidates,
    asked to stay out, and the last K // 2; NaN otherwise)."""
    d = planner.state_dim
    config = getattr(planner, "config", None)
    labelled = bool(config is not None and config.model.route_label)
    rows = []
    for kind, offsets in (("crossing", leads), ("keep-out", times)):
        for offset in offsets:
            starts = []
            for ep in episodes:
                flags = np.asarray(ep["in_risky_region"], bool)
                if (kind == "crossing") != bool(flags.any()):
                    continue
                t = max(0, int(np.argmax(flags)) - offset) if kind == "crossing" else offset
                if t < len(ep["rewards"]):
                    starts.append(ep["observations"][t])
            if not starts:
                continue
            obs = np.asarray(starts, np.float32)
            results = planner.plan_batch(obs[:, :d], obs[:, d:d + 2], alpha=alpha, candidates=candidates, seed=seed,
                                         map_input=planning_map)
            share, inside, outside, picked_out, by_label, prefers_out = [], [], [], [], [], []
            for r in results:
                enter = enters_risk(r.candidates, layout)
                if 0 < enter.sum() < len(enter):
                    prefers_out.append(r.risk_values[~enter].max() > r.risk_values[enter].max())
                share.append(enter.mean())
                half = len(enter) - len(enter) // 2  # the planner's split: the last K // 2 are asked to go through
                by_label.append((enter[:half].mean(), enter[half:].mean()))
                inside += r.risk_values[enter].tolist()
                outside += r.risk_values[~enter].tolist()
                picked_out.append(not enter[r.chosen_index])
            mean = lambda xs: float(np.mean(xs)) if xs else math.nan  # noqa: E731
            label0, label1 = (mean([b[i] for b in by_label]) if labelled else math.nan for i in (0, 1))
            rows.append({"kind": kind, "step": offset, "states": len(results), "entering": mean(share),
                         "cvar_entering": mean(inside), "cvar_out": mean(outside), "picked_out": mean(picked_out),
                         "both": len(prefers_out), "prefers_out": mean(prefers_out),
                         "entering_label0": label0, "entering_label1": label1})
    return rows


def markdown_table(rows: list[dict], alpha: float) -> str:
    cell = lambda v: "-" if math.isnan(v) else f"{v:.2f}"  # noqa: E731
    share = lambda v: "-" if math.isnan(v) else f"{v * 100:.0f} %"  # noqa: E731
    labelled = any(not math.isnan(r["entering_label0"]) for r in rows)
    lines = [f"| from | states | candidates entering risk | CVaR_{alpha:g}: entering / staying out | pick stays out |"
             " states with both kinds: best stays out |"
             + (" entering: label 0 / label 1 |" if labelled else ""), "|---|---|---|---|---|---|" + ("---|" if labelled else "")]
    for r in rows:
        where = (f"crossing episodes, {r['step'] / 10:g} s before they entered" if r["kind"] == "crossing"
                 else f"keep-out episodes, {r['step'] / 10:g} s in")
        lines.append(f"| {where} | {r['states']} | {r['entering'] * 100:.0f} % | {cell(r['cvar_entering'])} / "
                     f"{cell(r['cvar_out'])} | {r['picked_out'] * 100:.0f} % | {r['both']}: {share(r['prefers_out'])} |"
                     + (f" {share(r['entering_label0'])} / {share(r['entering_label1'])} |" if labelled else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.diagnostics.proposals", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, required=True, help="a map-conditioned model: file or shipped name")
    ap.add_argument("--dataset", required=True, help="a dataset collected over maps (layouts/ beside data/)")
    ap.add_argument("--map", required=True, help="the name of one of its maps (layouts/<name>.yaml)")
    ap.add_argument("--alpha", type=float, default=0.1, help="averse CVaR level the candidates are guided and scored at")
    ap.add_argument("--candidates", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=40, help="at most this many of the map's episodes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    layouts = load_dataset_layouts(args.dataset)
    if args.map not in layouts:
        ap.error(f"--map {args.map}: not among the dataset's maps (layouts/<name>.yaml)")
    layout = layouts[args.map]
    episodes = [e for e in load_dataset_episodes(args.dataset) if e["layout"] == args.map][:args.episodes]
    if not episodes:
        ap.error(f"--map {args.map}: the dataset holds no episode on it")
    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(args.checkpoint, device="cpu")
    if not planner.map_conditioned:
        ap.error(f"{args.checkpoint} is a per-map model: it reads no map")
    planning_map = layout_planning_map(planner, layout)
    print(f"{args.checkpoint} on {args.map} ({len(episodes)} episodes of {args.dataset}), K = {args.candidates}, "
          f"averse alpha {args.alpha:g}")
    print(markdown_table(probe(planner, planning_map, layout, episodes, args.alpha, args.candidates, args.seed),
                         args.alpha))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
