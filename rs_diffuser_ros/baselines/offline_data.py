"""Dataset transitions (s, a, r, s', terminal) and the normalisation the offline-RL baselines share.

CODAC and O-RAAC learn from one-step transitions, as D4RL's `qlearning_dataset` gives them: an
episode's last step is terminal only if the env terminated it (goal reached), not if the time
limit truncated it, so a truncated episode's value still bootstraps. Sizes come from the data:
obs [N, D], actions [N, A] (RiskyNav 8/2, Risky PointMass 4/2).

Networks see standardised observations and actions mapped to [-1, 1] by the dataset's per-axis
limits (the same convention as behaviour cloning), so a uniform random action in [-1, 1]^A, which
CODAC's conservative penalty draws, spans exactly the data's action range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rs_diffuser_ros.baselines.random_draws import integers


class OfflineDataError(ValueError):
    """Episodes that cannot be turned into transitions; the message names the episode and field."""


@dataclass
class Transitions:
    observations: Tensor       # [N, D] float32
    actions: Tensor            # [N, A]
    rewards: Tensor            # [N]
    next_observations: Tensor  # [N, D]
    terminals: Tensor          # [N] 1.0 where the env terminated the episode

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]

    def sample(self, batch_size: int, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        """A batch of rows drawn with replacement (generator None: the data's device RNG, random_draws.py)."""
        rows = integers(len(self), (batch_size,), generator, self.rewards.device)
        return (self.observations[rows], self.actions[rows], self.rewards[rows], self.next_observations[rows],
                self.terminals[rows])


def transitions_from_episodes(episodes, source: str = "dataset") -> Transitions:
    """Every step of every episode (dicts with observations [T+1, D], actions [T, A], rewards and
    terminations [T], as risky_nav.dataset.load_episodes returns them)."""
    parts = {k: [] for k in ("obs", "act", "rew", "next", "term")}
    dims = None
    for i, ep in enumerate(episodes):
        try:
            obs, act = np.asarray(ep["observations"], np.float32), np.asarray(ep["actions"], np.float32)
            rew, term = np.asarray(ep["rewards"], np.float32), np.asarray(ep["terminations"], bool)
        except KeyError as e:
            raise OfflineDataError(f"{source}: episode {i} has no field {e}") from None
        t = len(rew)
        dims = dims or (obs.shape[-1], act.shape[-1])
        if obs.shape != (t + 1, dims[0]) or act.shape != (t, dims[1]) or term.shape != (t,) or t < 1:
            raise OfflineDataError(f"{source}: episode {i} has observations {obs.shape}, actions {act.shape}, "
                                   f"rewards {rew.shape}, terminations {term.shape}; expected [T+1, {dims[0]}], "
                                   f"[T, {dims[1]}], [T], [T] with T >= 1")
        for name, value in (("observations", obs), ("actions", act), ("rewards", rew)):
            if not np.isfinite(value).all():
                raise OfflineDataError(f"{source}: episode {i} field '{name}' holds NaN/inf")
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(act)
        parts["rew"].append(rew)
        parts["term"].append(term.astype(np.float32))
    if not parts["obs"]:
        raise OfflineDataError(f"{source}: no episodes")
    cat = {k: torch.as_tensor(np.concatenate(v)) for k, v in parts.items()}
    return Transitions(cat["obs"], cat["act"], cat["rew"], cat["next"], cat["term"])


class Normalizer(nn.Module):
    """Observation standardisation and action <-> [-1, 1] mapping, fitted on the data, saved with a policy."""

    def __init__(self, obs_dim: int, action_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("action_low", -torch.ones(action_dim))
        self.register_buffer("action_high", torch.ones(action_dim))

    def fit(self, data: Transitions) -> "Normalizer":
        both = torch.cat([data.observations, data.next_observations])
        self.obs_mean.copy_(both.mean(0))
        self.obs_std.copy_(both.std(0).clamp(min=1e-3))   # a constant input (one goal) must not divide by 0
        self.action_low.copy_(data.actions.min(0).values)
        self.action_high.copy_(torch.maximum(data.actions.max(0).values, self.action_low + 1e-3))
        return self

    def observations(self, obs: Tensor) -> Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def to_unit(self, actions: Tensor) -> Tensor:
        return 2 * (actions - self.action_low) / (self.action_high - self.action_low) - 1

    def from_unit(self, unit: Tensor) -> Tensor:
        return self.action_low + (unit + 1) / 2 * (self.action_high - self.action_low)

    def normalized(self, data: Transitions) -> Transitions:
        """The transitions in network units (rewards and terminals untouched)."""
        return Transitions(self.observations(data.observations), self.to_unit(data.actions).clamp(-1, 1),
                           data.rewards, self.observations(data.next_observations), data.terminals)
