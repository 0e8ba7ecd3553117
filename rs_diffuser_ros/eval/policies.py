"""Batch policies for lockstep evaluation, one per kind of setting, all with reset(slot, obs) / act(obs, slots)."""
from __future__ import annotations

import time

import numpy as np

from rs_diffuser_ros.core.config import GOAL_DIM, STATE_DIM


class PlannerPolicy:
    """RiskSensitivePlanner.plan_batch once per control step for every running environment."""

    def __init__(self, planner, alpha: float, risk_mode: str, costmap=None, seed: int = 0):
        self.planner, self.alpha, self.risk_mode, self.costmap = planner, alpha, risk_mode, costmap
        # One noise seed per call, drawn from this stream: a run is reproducible for a given batching.
        self._seeds = np.random.default_rng(seed)
        self.plan_calls = 0
        self.plan_seconds = 0.0

    def reset(self, slot: int, obs: np.ndarray) -> None:
        pass  # the planner keeps no per-episode state: it replans from the observation every step

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        t0 = time.perf_counter()
        results = self.planner.plan_batch(obs[:, :STATE_DIM], obs[:, STATE_DIM:STATE_DIM + GOAL_DIM], self.alpha,
                                          self.risk_mode, self.costmap, seed=int(self._seeds.integers(2**31 - 1)))
        self.plan_seconds += time.perf_counter() - t0
        self.plan_calls += 1
        return np.stack([r.action for r in results])


class BehaviourCloningBatchPolicy:
    def __init__(self, policy):
        self.policy = policy

    def reset(self, slot: int, obs: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        return self.policy.act(obs)


class ScriptedBatchPolicy:
    """One scripted risky_nav policy per environment slot (each follows its own A* route)."""

    def __init__(self, name: str, layout, n_slots: int, seed: int = 0):
        from risky_nav.policies import make_policy

        rngs = np.random.default_rng(seed).spawn(n_slots)
        self.policies = [make_policy(name, layout, rng) for rng in rngs]

    def reset(self, slot: int, obs: np.ndarray) -> None:
        self.policies[slot].reset(obs)

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        return np.stack([self.policies[s](o) for s, o in zip(slots, obs)])
