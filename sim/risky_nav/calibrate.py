"""Calibration check: the scripted short cut must win on mean return, the detour on CVaR_0.1.

    python -m risky_nav.calibrate --layout default --episodes 500

Both policies run the same seeds, hence the same starts and goals. Prints a Markdown table
(mean return and CVaR_0.1 with 95% CIs: normal approximation for the mean, percentile
bootstrap for CVaR) and whether the two calibration conditions hold; exits 1 if they do not.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from risky_nav.env import RiskyNavEnv
from risky_nav.policies import make_policy
from risky_nav.rollout import EpisodeRecord, run_episode
from risky_nav.stats import cvar_ci, mean_ci

ALPHA = 0.1


def evaluate(layout: str, policy_name: str, episodes: int, seed: int) -> list[EpisodeRecord]:
    env = RiskyNavEnv(layout)
    try:
        policy = make_policy(policy_name, env.layout, np.random.default_rng(seed))
        return [run_episode(env, policy, seed=seed + i)
                for i in tqdm(range(episodes), desc=policy_name, leave=False)]
    finally:
        env.close()


def summarize(episodes: list[EpisodeRecord]) -> dict:
    returns = np.array([e.episode_return for e in episodes])
    path_lengths = [float(np.linalg.norm(np.diff(e.observations[:, :2], axis=0), axis=1).sum())
                    for e in episodes]
    return dict(
        episodes=len(episodes),
        mean=mean_ci(returns),
        cvar=cvar_ci(returns, ALPHA),
        event_episodes=float(np.mean([e.risk_events.any() for e in episodes])),
        events_per_episode=float(np.mean([e.risk_events.sum() for e in episodes])),
        collision_episodes=float(np.mean([e.collisions.any() for e in episodes])),
        success=float(np.mean([e.success for e in episodes])),
        length=float(np.mean([len(e) for e in episodes])),
        path_m=float(np.mean(path_lengths)),
    )


def markdown_table(rows: dict[str, dict]) -> str:
    lines = [
        "| policy | episodes | mean return [95% CI] | CVaR_0.1 [95% CI] | episodes with event | "
        "events / episode | episodes with collision | success | steps | path (m) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        m, c = s["mean"], s["cvar"]
        lines.append(
            f"| {name} | {s['episodes']} | {m[0]:.2f} [{m[1]:.2f}, {m[2]:.2f}] | "
            f"{c[0]:.2f} [{c[1]:.2f}, {c[2]:.2f}] | {100 * s['event_episodes']:.1f}% | "
            f"{s['events_per_episode']:.3f} | {100 * s['collision_episodes']:.1f}% | "
            f"{100 * s['success']:.1f}% | {s['length']:.1f} | {s['path_m']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="default", help="layout name or path to a YAML file")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows = {name: summarize(evaluate(args.layout, name, args.episodes, args.seed))
            for name in ("shortcut", "detour")}
    print(f"Layout `{args.layout}`, {args.episodes} episodes per policy, seeds "
          f"{args.seed}..{args.seed + args.episodes - 1} (same starts and goals for both).\n")
    print(markdown_table(rows))
    short, detour = rows["shortcut"], rows["detour"]
    mean_ok = short["mean"][1] > detour["mean"][2]
    cvar_ok = detour["cvar"][1] > short["cvar"][2]
    print(f"\nshort cut mean > detour mean, CIs disjoint: {'yes' if mean_ok else 'NO'}")
    print(f"detour CVaR_0.1 > short cut CVaR_0.1, CIs disjoint: {'yes' if cvar_ok else 'NO'}")
    print(f"detour path {100 * (detour['path_m'] / short['path_m'] - 1):.0f}% longer than the short cut")
    return 0 if mean_ok and cvar_ok else 1


if __name__ == "__main__":
    sys.exit(main())
