"""Many environments stepped in lockstep, one batched policy call per control step for all of them.

The diffusion planner is far cheaper per episode when it plans for all environments in one
batch (envs x candidates rows through the network) than one environment at a time. A slot whose
episode ends is reset at once with the next pending episode, so the batch stays full until the
work runs out.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable, Protocol

import numpy as np

from risky_nav.vector import SerialEnvBatch

from rs_diffuser_ros.eval.metrics import EpisodeOutcome


class BatchPolicy(Protocol):
    def reset(self, slot: int, obs: np.ndarray) -> None:
        """A new episode starts in environment `slot` with first observation `obs`."""

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        """obs [B, 8] of the environments `slots` -> actions [B, 2]."""


class _Episode:
    """Running tallies of one episode in one slot."""

    def __init__(self, episode: int, seed: int, obs: np.ndarray):
        self.episode, self.seed = episode, seed
        self.path = [obs[:2].copy()]
        self.events, self.collisions = [], []
        self.episode_return = 0.0
        self.length = self.collision_steps = self.risky_steps = self.violation_steps = self.risk_events = 0

    def record(self, obs: np.ndarray, reward: float, collision, in_risky_region, risk_event) -> None:
        """One step: the observation after it, its reward and the env's info flags."""
        collision, in_risky_region, risk_event = bool(collision), bool(in_risky_region), bool(risk_event)
        self.path.append(obs[:2].copy())
        self.episode_return += float(reward)
        self.length += 1
        self.collision_steps += collision
        self.risky_steps += in_risky_region
        self.violation_steps += collision or in_risky_region
        self.risk_events += risk_event
        self.events.append(risk_event)
        self.collisions.append(collision)

    def outcome(self, setting: str, success: bool) -> EpisodeOutcome:
        return EpisodeOutcome(setting, self.episode, self.seed, self.episode_return, self.length, success,
                              self.collision_steps, self.risky_steps, self.violation_steps, self.risk_events,
                              np.asarray(self.path, dtype=np.float32), np.asarray(self.events, dtype=bool),
                              np.asarray(self.collisions, dtype=bool))


def run_lockstep(envs, policy: BatchPolicy, setting: str, episodes: list[tuple[int, int]],
                 on_episode: Callable[[EpisodeOutcome], None] | None = None,
                 timings: dict[str, float] | None = None,
                 on_step: Callable[[int, np.ndarray, float, bool, bool, dict], None] | None = None) -> list[EpisodeOutcome]:
    """Run every (episode index, env seed) of `episodes` with `policy`, all envs at a time.

    `envs`: a list of envs, or a risky_nav.vector batch (SerialEnvBatch / ProcessEnvBatch). `timings`, when
    given, accumulates seconds spent in "policy" (act), "env" (step and reset) and "bookkeeping" (the rest).
    `on_step(slot, obs after the step, reward, terminated, truncated, flags)` sees every environment step (flags:
    collision, in_risky_region, risk_event), e.g. to record the episodes as a dataset (eval/handover.py)."""
    if not envs:
        raise ValueError("run_lockstep needs at least one environment")
    batch = SerialEnvBatch.from_envs(envs) if isinstance(envs, (list, tuple)) else envs
    pending = deque(episodes)
    running: dict[int, _Episode] = {}
    obs = np.zeros((batch.num_envs, 8), dtype=np.float32)

    clock = {"policy": 0.0, "env": 0.0}
    t_begin = time.perf_counter()

    def start(slots: list[int]) -> None:
        jobs = [pending.popleft() for _ in slots]
        t0 = time.perf_counter()
        first, _ = batch.reset(slots, seeds=[seed for _, seed in jobs])
        clock["env"] += time.perf_counter() - t0
        for row, (slot, (episode, seed)) in enumerate(zip(slots, jobs)):
            obs[slot] = first[row]
            running[slot] = _Episode(episode, seed, obs[slot])
            policy.reset(slot, obs[slot])

    start(list(range(min(batch.num_envs, len(pending)))))
    outcomes = []
    while running:
        slots = sorted(running)
        t0 = time.perf_counter()
        actions = np.asarray(policy.act(obs[slots], slots), dtype=np.float32)
        t1 = time.perf_counter()
        if actions.shape != (len(slots), 2):
            raise RuntimeError(f"policy for {setting!r} returned actions of shape {actions.shape}, "
                               f"expected ({len(slots)}, 2)")
        next_obs, rewards, terminated, truncated, infos = batch.step(actions, slots)
        clock["policy"] += t1 - t0
        clock["env"] += time.perf_counter() - t1
        finished = []
        obs[slots] = next_obs
        # Python scalars of the whole step at once, not numpy indexing per env and value.
        columns = [np.asarray(a).tolist() for a in (rewards, infos["collision"], infos["in_risky_region"],
                                                    infos["risk_event"])]
        ends = np.logical_or(terminated, truncated).tolist()
        for row, (slot, reward, collision, risky, event) in enumerate(zip(slots, *columns)):
            running[slot].record(obs[slot], reward, collision, risky, event)
            if on_step is not None:
                on_step(slot, obs[slot], reward, bool(terminated[row]), bool(truncated[row]),
                        {"collision": bool(collision), "in_risky_region": bool(risky), "risk_event": bool(event)})
            if ends[row]:
                outcome = running.pop(slot).outcome(setting, success=bool(terminated[row]))
                outcomes.append(outcome)
                if on_episode is not None:
                    on_episode(outcome)
                finished.append(slot)
        refill = finished[:len(pending)]
        if refill:
            start(refill)
    if timings is not None:
        timings["policy"] = timings.get("policy", 0.0) + clock["policy"]
        timings["env"] = timings.get("env", 0.0) + clock["env"]
        timings["bookkeeping"] = (timings.get("bookkeeping", 0.0) + time.perf_counter() - t_begin
                                  - clock["policy"] - clock["env"])
    return sorted(outcomes, key=lambda o: o.episode)
