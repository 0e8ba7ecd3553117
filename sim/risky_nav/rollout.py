"""Run one episode of a policy in a RiskyNav env and keep everything a dataset needs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EpisodeRecord:
    """One episode: T steps, T+1 observations (the architecture's dataset contract)."""

    policy: str
    observations: np.ndarray    # float32 [T+1, 8]
    actions: np.ndarray         # float32 [T, 2]
    rewards: np.ndarray         # float64 [T]
    terminations: np.ndarray    # bool [T]
    truncations: np.ndarray     # bool [T]
    risk_events: np.ndarray     # bool [T]
    collisions: np.ndarray      # bool [T]
    in_risky_region: np.ndarray  # bool [T]

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())

    @property
    def success(self) -> bool:
        return bool(self.terminations[-1])

    def __len__(self) -> int:
        return len(self.rewards)


def run_episode(env, policy, seed: int | None = None, options: dict | None = None) -> EpisodeRecord:
    """Reset `env` with `seed`/`options`, then step `policy` until termination or truncation."""
    obs, _ = env.reset(seed=seed, options=options)
    policy.reset(obs)
    observations, actions, rewards = [obs], [], []
    terminations, truncations, events, collisions, inside = [], [], [], [], []
    done = False
    while not done:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terminations.append(terminated)
        truncations.append(truncated)
        events.append(info["risk_event"])
        collisions.append(info["collision"])
        inside.append(info["in_risky_region"])
        done = terminated or truncated
    return EpisodeRecord(
        policy=policy.name,
        observations=np.asarray(observations, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terminations, dtype=bool),
        truncations=np.asarray(truncations, dtype=bool),
        risk_events=np.asarray(events, dtype=bool),
        collisions=np.asarray(collisions, dtype=bool),
        in_risky_region=np.asarray(inside, dtype=bool),
    )
