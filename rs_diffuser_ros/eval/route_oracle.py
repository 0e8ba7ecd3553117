"""How far could better route choices take a pooled CVaR_0.1? A per-map oracle over the planner's own driving.

    python -m rs_diffuser_ros.eval.route_oracle --choose A/gen*/ --judge B/gen*/ [--cautious averse:0.1 averse:0.05]
    python -m rs_diffuser_ros.eval.route_oracle --choose A/gen*/ --judge B/gen*/ --cautious scripted:detour \
        --short scripted:shortcut --judge-episodes 20      # the same over the scripted drivers: the claim's ceiling

For each map, the *way round* is the episodes of the cautious settings that never entered a risky region, the *short
cut* alpha 1's (`neutral`, or --short's) episodes: both as this controller (or a scripted driver) drove them. The
oracle picks each map's way by its CVaR_0.1 on the --choose runs (the way round only where it has at least
--min-episodes there), then is judged on the --judge runs (other env seeds, so the pick is not tuned on what judges
it; --judge-episodes: each map's first N only): every map weighted as one map of alpha 1's episodes, pooled
CVaR_0.1 with a map-stratified bootstrap interval, against alpha 1's on the same runs. It answers "is the pooled
claim out of reach of route choice alone at this many episodes", not what a policy does: the way-round episodes are
the ones where a cautious setting happened to go round, and their starts may favour it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from risky_nav.stats import cvar

from rs_diffuser_ros.eval.claims import AVERSE, NEUTRAL
from rs_diffuser_ros.eval.metrics import CVAR_LEVEL, N_BOOTSTRAP
from rs_diffuser_ros.eval.pooled import merge_by_map, read_run


def weighted_cvar(values, weights, alpha: float = CVAR_LEVEL) -> float:
    """Mean of the worst `alpha` share of the total weight (values [N] with weights [N] > 0)."""
    order = np.argsort(values)
    v, w = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    edge = np.cumsum(w)
    want = alpha * edge[-1]
    k = int(np.searchsorted(edge, want - 1e-12))
    take = w[:k + 1].copy()
    take[-1] -= edge[k] - want
    return float((v[:k + 1] * take).sum() / take.sum())


def ways(name: str, run: dict, cautious: list[str], where: str, short_setting: str = NEUTRAL,
         episodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(way-round returns, short-cut returns) of map `name`'s run (from the `where` runs, for the error), from each
    setting's first `episodes` (None: all)."""
    round_ = [e["episode_return"] for setting in cautious for e in run["episodes"].get(setting, [])[:episodes]
              if not e["entered_risky_region"]]
    short = [e["episode_return"] for e in run["episodes"].get(short_setting, [])[:episodes]]
    if not short:
        raise SystemExit(f"{name}: no {short_setting!r} episodes in the {where} runs (the short cut's setting)")
    return np.array(round_, float), np.array(short, float)


def choose(runs: dict[str, dict], cautious: list[str], min_episodes: int,
           short_setting: str = NEUTRAL) -> dict[str, str]:
    """{map: "round" or "short"}: the way with the higher CVaR_0.1 on these runs."""
    picks = {}
    for name, run in runs.items():
        round_, short = ways(name, run, cautious, "--choose", short_setting)
        picks[name] = "round" if len(round_) >= min_episodes and cvar(round_) > cvar(short) else "short"
    return picks


def judge(runs: dict[str, dict], picks: dict[str, str], cautious: list[str], seed: int = 0,
          n_boot: int = N_BOOTSTRAP, short_setting: str = NEUTRAL, episodes: int | None = None) -> dict:
    """The oracle's and the short cut's (alpha 1's) pooled CVaR_0.1 over `runs` with map-stratified bootstrap
    intervals, from each setting's first `episodes` a map (None: all)."""
    chosen, neutral = [], []
    for name, run in runs.items():
        round_, short = ways(name, run, cautious, "--judge", short_setting, episodes)
        use_round = picks.get(name) == "round" and len(round_) > 0  # none driven round here: its short cut
        chosen.append(round_ if use_round else short)
        neutral.append(short)
    sizes = [len(s) for s in neutral]  # every map counts as many episodes as alpha 1 ran on it
    weights = np.concatenate([np.full(len(c), n / len(c)) for c, n in zip(chosen, sizes)])
    rng = np.random.default_rng(seed)
    boot = np.empty((2, n_boot))
    for b in range(n_boot):
        for row, groups in enumerate((chosen, neutral)):
            boot[row, b] = cvar(np.concatenate([rng.choice(g, n) for g, n in zip(groups, sizes)]))
    low, high = np.quantile(boot, [0.025, 0.975], axis=1)
    return {"oracle": (weighted_cvar(np.concatenate(chosen), weights), low[0], high[0]),
            "neutral": (cvar(np.concatenate(neutral)), low[1], high[1]),
            "maps_round": sum(picks.get(name) == "round" for name in runs), "maps": len(runs)}


def _by_map(folders: list[Path]) -> dict[str, dict]:
    runs = merge_by_map([read_run(f) for f in folders], folders)
    return {Path(r["meta"]["layout"]).stem: r for r in runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval.route_oracle", description=__doc__.split("\n\n")[0])
    ap.add_argument("--choose", nargs="+", type=Path, required=True, help="evaluation folders the ways are picked on")
    ap.add_argument("--judge", nargs="+", type=Path, required=True, help="evaluation folders at other env seeds")
    ap.add_argument("--cautious", nargs="+", default=[AVERSE],
                    help="settings whose episodes that never entered a risky region drive the way round")
    ap.add_argument("--short", default=NEUTRAL, help="the setting whose episodes drive the short cut")
    ap.add_argument("--min-episodes", type=int, default=5, help="way-round episodes a map needs to be picked round")
    ap.add_argument("--judge-episodes", type=int, help="judge on each setting's first N episodes a map (default: all)")
    args = ap.parse_args(argv)
    if args.judge_episodes is not None and args.judge_episodes < 1:
        ap.error(f"--judge-episodes must be at least 1, got {args.judge_episodes}")
    chosen_on, judged_on = _by_map(args.choose), _by_map(args.judge)
    missing = sorted(set(judged_on) - set(chosen_on))
    if missing:
        raise SystemExit(f"--judge maps with no --choose run: {', '.join(missing)}")
    picks = choose(chosen_on, args.cautious, args.min_episodes, args.short)
    result = judge(judged_on, picks, args.cautious, short_setting=args.short, episodes=args.judge_episodes)
    fmt = "{:.2f} [{:.2f}, {:.2f}]".format
    print(f"| maps | way round picked on | oracle CVaR_0.1 | {args.short} CVaR_0.1 |\n|---|---|---|---|\n"
          f"| {result['maps']} | {result['maps_round']} | {fmt(*result['oracle'])} | {fmt(*result['neutral'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
