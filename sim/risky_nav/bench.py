"""Environment speed: control steps per second on one core, printed as a Markdown table.

    python -m risky_nav.bench [--layout default] [--steps 20000]

Rows: the bare env with random actions, the same through `gymnasium.make` (its checker and
order-enforcing wrappers), and full episodes with the scripted short-cut and detour policies
(route planning and pure pursuit included), which is what dataset collection runs.
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import risky_nav  # noqa: F401  (registers RiskyNav-v0)
from risky_nav.env import RiskyNavEnv
from risky_nav.policies import make_policy
from risky_nav.rollout import run_episode


def random_action_rate(env, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(env.action_space.low, env.action_space.high, (steps, 2)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def policy_rate(layout: str, policy_name: str, steps: int, seed: int) -> float:
    env = RiskyNavEnv(layout)
    policy = make_policy(policy_name, env.layout, np.random.default_rng(seed))
    done, episode = 0, 0
    start = time.perf_counter()
    while done < steps:
        done += len(run_episode(env, policy, seed=seed + episode))
        episode += 1
    rate = done / (time.perf_counter() - start)
    env.close()
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="default")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows = []
    for substeps in (4, 8):
        env = RiskyNavEnv(args.layout, physics_substeps=substeps)
        rows.append((f"bare env, random actions, {substeps} physics substeps",
                     random_action_rate(env, args.steps, args.seed)))
        env.close()
    env = gym.make("RiskyNav-v0", layout=args.layout)
    rows.append(("gymnasium.make, random actions, 4 substeps", random_action_rate(env, args.steps, args.seed)))
    env.close()
    for name in ("shortcut", "detour"):
        rows.append((f"scripted {name} episodes (planning included)",
                     policy_rate(args.layout, name, args.steps, args.seed)))

    print(f"Layout `{args.layout}`, {args.steps} control steps per row (control period 0.1 s), one process.\n")
    print("| setting | steps/s | x real time |")
    print("|---|---|---|")
    for label, rate in rows:
        print(f"| {label} | {rate:,.0f} | {rate * 0.1:,.0f} |")


if __name__ == "__main__":
    main()
