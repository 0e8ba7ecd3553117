"""Collect a Risky PointMass offline dataset from the scripted policy mix into Minari format.

    python -m risky_pointmass.collect --episodes 1000 --seed 0 --out datasets/riskypointmass/mixed-v0

Starts come from the env's training distribution (uniform outside the disc), as CODAC's online
agent collected its data. Each episode draws its behaviour policy from --mix and is reset with
seed --seed + i, so a dataset is reproducible from its command line. The file format, writer and
episode loop are risky_nav's (risky_nav.dataset, risky_nav.rollout): every loader of RiskyNav
datasets reads these too, with observations [T+1, 4] instead of [T+1, 8].
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from risky_nav.collect import dataset_id_for, parse_mix
from risky_nav.dataset import DatasetWriter
from risky_nav.rollout import run_episode
from risky_pointmass import ENV_ID
from risky_pointmass.policies import POLICY_NAMES, make_policy

# ~8 % random steps, like CODAC's 1000 exploration steps in its 11k-step buffer.
DEFAULT_MIX = {"straight": 0.3, "detour": 0.3, "noisy_straight": 0.195, "noisy_detour": 0.195, "random": 0.01}
WRITE_EVERY = 100


def collect(episodes: int, out: Path, mix: dict[str, float], seed: int, risk_prob: float = 0.9,
            risk_penalty: float = 50.0, progress: bool = True) -> DatasetWriter:
    import gymnasium as gym

    env = gym.make(ENV_ID, risk_prob=risk_prob, risk_penalty=risk_penalty, disable_env_checker=True)
    rng = np.random.default_rng(seed)
    names = list(mix)
    policies = {name: make_policy(name, rng) for name in names}
    writer = DatasetWriter(
        out, dataset_id_for(out), env.spec, env.observation_space, env.action_space,
        metadata=dict(
            author={"rs_diffuser_ros"}, algorithm_name="scripted policy mix (risky_pointmass.policies)",
            description=f"Risky PointMass (CODAC): {episodes} episodes from a mix of scripted straight and "
                        f"detour policies with noise, and a few random ones; training start distribution.",
            code_permalink="sim/risky_pointmass/collect.py",
            env="RiskyPointMass-v0", risk_prob=risk_prob, risk_penalty=risk_penalty, policy_mix=mix, seed=seed))
    buffer, seeds = [], []
    bar = tqdm(range(episodes), desc=f"collecting {out.name}", unit="ep", disable=not progress)
    for i in bar:
        name = names[rng.choice(len(names), p=[mix[n] for n in names])]
        buffer.append(run_episode(env, policies[name], seed=seed + i))
        seeds.append(seed + i)
        if len(buffer) == WRITE_EVERY or i == episodes - 1:
            writer.write(buffer, seeds, [{}] * len(buffer))
            buffer, seeds = [], []
    env.close()
    return writer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True, help="new dataset directory (Minari layout)")
    parser.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()),
                        help=f"behaviour policies and weights, from {POLICY_NAMES}")
    parser.add_argument("--risk-prob", type=float, default=0.9,
                        help="CODAC's risk_prob: probability of NO penalty on a step inside the disc")
    parser.add_argument("--risk-penalty", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        raise SystemExit("--episodes must be >= 1")
    writer = collect(args.episodes, args.out, parse_mix(args.mix, POLICY_NAMES), args.seed,
                     args.risk_prob, args.risk_penalty)
    meta = writer.storage.metadata
    print(f"wrote {meta['total_episodes']} episodes, {meta['total_steps']} steps to {args.out} "
          f"(Minari id {meta['dataset_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
