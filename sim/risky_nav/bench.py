"""Environment speed, printed as a Markdown table.

    python -m risky_nav.bench [--layout default] [--steps 20000]
    python -m risky_nav.bench --vector --workers 0 2 --envs 64 [--steps 500] [--action random]

Without --vector, control steps per second on one core. Rows: the bare env with random
actions, the same through `gymnasium.make` (its checker and order-enforcing wrappers), and
full episodes with the scripted short-cut and detour policies (route planning and pure
pursuit included), which is what dataset collection runs.

With --vector, env steps per second of a `risky_nav.vector` batch of N envs over W worker
processes (W = 0: all in this process), every env stepped every control step with random or
constant actions, finished episodes reset at once with fresh seeds as an evaluation does.
`--steps` is then the number of batch steps; startup (spawning workers) is timed apart.
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import risky_nav  # noqa: F401  (registers RiskyNav-v0)
from risky_nav.env import RiskyNavEnv
from risky_nav.layout import load_layout
from risky_nav.policies import make_policy
from risky_nav.rollout import run_episode
from risky_nav.vector import make_env_batch


CONSTANT_ACTION = np.array([0.8, 0.25])   # fractions of (max_v, max_omega): wide circles, some wall contact


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


def vector_rate(layout: str, workers: int, n_envs: int, steps: int, action: str, seed: int) -> tuple[float, float]:
    """(env steps/s, startup seconds) of a batch stepping all its envs `steps` times."""
    start = time.perf_counter()
    batch = make_env_batch(n_envs, workers, layout)
    startup = time.perf_counter() - start
    robot = load_layout(layout).robot
    high = np.array([robot.max_v, robot.max_omega])
    with batch:
        rng = np.random.default_rng(seed)
        next_seed = seed + n_envs
        batch.reset(seeds=range(seed, next_seed))
        start = time.perf_counter()
        for _ in range(steps):
            actions = (rng.uniform(-high, high, (n_envs, 2)) if action == "random"
                       else np.broadcast_to(CONSTANT_ACTION * high, (n_envs, 2)))
            _, _, terminated, truncated, _ = batch.step(actions)
            done = np.flatnonzero(terminated | truncated)
            if done.size:
                batch.reset(done, seeds=range(next_seed, next_seed + done.size))
                next_seed += done.size
        rate = n_envs * steps / (time.perf_counter() - start)
    return rate, startup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="default")
    parser.add_argument("--steps", type=int, help="control steps per row (default 20000), with --vector batch steps "
                                                   "per row (default 500: every env reaches its 400-step time limit once)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vector", action="store_true", help="benchmark a risky_nav.vector batch instead")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="with --vector: worker processes, one row each (0: in this process)")
    parser.add_argument("--envs", type=int, nargs="+", default=[64], help="with --vector: envs in the batch")
    parser.add_argument("--action", choices=("random", "constant"), default="random")
    args = parser.parse_args(argv)
    if args.vector:
        vector_table(args)
        return
    args.steps = args.steps or 20000

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


def vector_table(args) -> None:
    steps = args.steps or 500
    print(f"Layout `{args.layout}`, {steps} batch steps per row, {args.action} actions, "
          f"finished episodes reset at once.\n")
    print("| workers | envs | env steps/s | ms per batch step | startup s |")
    print("|---|---|---|---|---|")
    for n_envs in args.envs:
        for workers in args.workers:
            rate, startup = vector_rate(args.layout, workers, n_envs, steps, args.action, args.seed)
            print(f"| {workers} | {n_envs} | {rate:,.0f} | {1000 * n_envs / rate:.2f} | {startup:.1f} |", flush=True)


if __name__ == "__main__":
    main()
