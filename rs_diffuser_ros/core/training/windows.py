"""Training data from episodes: plan windows, transitions and discounted Monte-Carlo returns.

Every step t of every episode starts one window: states t, t+S, .. t+(H-1)S (S = model.plan_stride control
periods between plan states), padded past the episode's end by repeating its last state (Diffuser does this),
the goal at t, and the critic's target G_t = sum_{k >= t} gamma^(k-t) r_k up to the episode's end. A time-limit
truncation simply ends the sum (no bootstrap: the critic is Monte-Carlo by design). The same t is a transition
(s_t, a_t, s_{t+S}) for the inverse dynamics: the action taken at t towards the next plan state. Everything
lives in flat tensors, so a batch is one gather (fast on GPU, no DataLoader).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import ACTION_DIM, ModelConfig


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.empty(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def _optional(episode: Any, name: str, default: Any = None) -> Any:
    """An episode's field, whether the episode is a dict or an object with attributes; `default` when it has none."""
    return episode.get(name, default) if isinstance(episode, dict) else getattr(episode, name, default)


def _field(episode: Any, name: str, index: int, source: str) -> np.ndarray:
    value = _optional(episode, name)
    if value is None:
        raise ValueError(f"{source}: episode {index} has no field '{name}'")
    return np.asarray(value)


@dataclass
class WindowDataset:
    states: Tensor  # [N, D] every observation's state (D = model.state_dim), episodes concatenated
    goals: Tensor  # [N, G]
    actions: Tensor  # [N, 2] action taken at that observation (zeros at an episode's last one)
    returns: Tensor  # [N] Monte-Carlo return from that observation
    starts: Tensor  # [W] flat index of each window start (= each transition's s_t)
    last: Tensor  # [W] flat index of the last observation of that window's episode
    horizon: int
    gamma: float
    episode: Tensor | None = None  # [W] the episode of each window (map-conditioned training: its map and goal)
    episode_map: Tensor | None = None  # [E] index into `map_names` of each episode's map
    episode_goal: Tensor | None = None  # [E, 2] each episode's goal position
    map_names: tuple[str, ...] = ()
    # [N] 1.0 when the episode is in or enters a risky region at this observation or later (an episode's last one
    # repeats its last step's): read at a window's start it is the route label (goes_into_risk), at its last state where
    # the episode goes on after the window (model.critic_reads_continuation)
    into_risk_from: Tensor | None = None
    stride: int = 1  # observations between consecutive window states (model.plan_stride)
    # [W] 1.0 when the window's episode ended at its goal (its last step a termination, not the time limit); None when
    # the episodes carry no terminations. The critic may learn from these alone (training.critic_on_arrived).
    arrived: Tensor | None = None

    @classmethod
    def from_episodes(cls, episodes: Sequence[Any], horizon: int, gamma: float, source: str = "dataset",
                      map_names: Sequence[str] | None = None, state_dim: int = ModelConfig.state_dim,
                      goal_dim: int = ModelConfig.goal_dim, stride: int = 1) -> "WindowDataset":
        """Observations are [state (state_dim), goal (goal_dim)], the model's layout (ModelConfig).
        map_names: the maps a map-conditioned model trains on; every episode's `layout` must be one of them
        and its goal must stay fixed (one goal distance field per episode). None: maps are not tracked."""
        obs_dim = state_dim + goal_dim
        if not (isinstance(stride, int) and stride >= 1):
            raise ValueError(f"{source}: the window stride (model.plan_stride) must be a positive int, got {stride!r}")
        if len(episodes) == 0:
            raise ValueError(f"{source}: no episodes")
        states, goals, actions, returns, starts, last = [], [], [], [], [], []
        into_risk = []  # per observation, from the episodes' in_risky_region flags (None once an episode has none)
        arrived = []  # per window, from the episodes' terminations (None once an episode has none)
        window_episode, episode_map, episode_goal = [], [], []
        map_of = {name: i for i, name in enumerate(map_names or ())}
        offset = 0
        for i, ep in enumerate(episodes):
            obs = _field(ep, "observations", i, source).astype(np.float32)
            act = _field(ep, "actions", i, source).astype(np.float32)
            rew = _field(ep, "rewards", i, source).astype(np.float64)
            t = len(rew)
            if obs.ndim != 2 or obs.shape[1] != obs_dim:
                raise ValueError(f"{source}: episode {i} field 'observations' must be [T+1, {obs_dim}] (model.state_dim "
                                 f"{state_dim} + model.goal_dim {goal_dim}), got {obs.shape}")
            if t < 1 or obs.shape[0] != t + 1:
                raise ValueError(f"{source}: episode {i} has {t} rewards but {obs.shape[0]} observations (need T >= 1 and T+1)")
            if act.shape != (t, ACTION_DIM):
                raise ValueError(f"{source}: episode {i} field 'actions' must be [{t}, {ACTION_DIM}], got {act.shape}")
            for name, arr in (("observations", obs), ("actions", act), ("rewards", rew)):
                if not np.isfinite(arr).all():
                    raise ValueError(f"{source}: episode {i} field '{name}' has non-finite values")
            if map_names is not None:
                name = _optional(ep, "layout", "")
                if name not in map_of:
                    raise ValueError(f"{source}: episode {i} was driven on map {name!r}, which is not among the "
                                     f"dataset's maps (layouts/<name>.yaml); a map-conditioned model needs every episode's map")
                if not np.allclose(obs[:, state_dim:], obs[:1, state_dim:]):
                    raise ValueError(f"{source}: episode {i} changes its goal; map-conditioned training needs one goal per episode")
                window_episode.append(np.full(t, i))
                episode_map.append(map_of[name])
                episode_goal.append(obs[0, state_dim:state_dim + 2])
            states.append(obs[:, :state_dim])
            goals.append(obs[:, state_dim:])
            actions.append(np.concatenate([act, np.zeros((1, ACTION_DIM), np.float32)]))
            returns.append(np.concatenate([discounted_returns(rew, gamma), [0.0]]))
            flags = _optional(ep, "in_risky_region")
            if flags is None or into_risk is None:
                into_risk = None
            else:  # does the episode enter a risky region at this step or later: a reversed running "or"
                later = np.logical_or.accumulate(np.asarray(flags, bool)[::-1])[::-1].astype(np.float32)
                into_risk.append(np.concatenate([later, later[-1:]]))
            terminations = _optional(ep, "terminations")
            if terminations is None or arrived is None:
                arrived = None
            else:
                arrived.append(np.full(t, float(np.asarray(terminations)[-1])))
            starts.append(offset + np.arange(t))
            last.append(np.full(t, offset + t))
            offset += t + 1
        cat = lambda xs, dtype: torch.as_tensor(np.concatenate(xs), dtype=dtype)  # noqa: E731
        extra = {}  # the optional fields
        if map_names is not None:
            extra = dict(episode=cat(window_episode, torch.long), episode_map=torch.as_tensor(episode_map, dtype=torch.long),
                        episode_goal=torch.as_tensor(np.stack(episode_goal), dtype=torch.float32), map_names=tuple(map_names))
        if into_risk is not None:
            extra["into_risk_from"] = cat(into_risk, torch.float32)
        if arrived is not None:
            extra["arrived"] = cat(arrived, torch.float32)
        return cls(cat(states, torch.float32), cat(goals, torch.float32), cat(actions, torch.float32),
                   cat(returns, torch.float32), cat(starts, torch.long), cat(last, torch.long), horizon, gamma,
                   stride=stride, **extra)

    def __len__(self) -> int:
        return len(self.starts)

    def to(self, device) -> "WindowDataset":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return WindowDataset(move(self.states), move(self.goals), move(self.actions), move(self.returns),
                             move(self.starts), move(self.last), self.horizon, self.gamma, move(self.episode),
                             move(self.episode_map), move(self.episode_goal), self.map_names,
                             move(self.into_risk_from), self.stride, move(self.arrived))

    @property
    def goes_into_risk(self) -> Tensor | None:
        """[W] 1.0 when the window's episode enters a risky region at or after its start (the route label)."""
        return None if self.into_risk_from is None else self.into_risk_from[self.starts]

    def window_indices(self, rows: Tensor) -> Tensor:
        """Flat observation indices [B, H] of windows `rows` (every `stride`-th), clamped at the episode's last state."""
        steps = torch.arange(self.horizon, device=rows.device) * self.stride
        return torch.minimum(self.starts[rows, None] + steps, self.last[rows, None])

    def batch(self, rows: Tensor) -> dict[str, Tensor]:
        """World-unit batch: windows [B, H, D], goal [B, G], return [B], state/next_state/action [B, ...]."""
        idx = self.window_indices(rows)
        s = self.starts[rows]
        next_state = self.states[torch.minimum(s + self.stride, self.last[rows])]  # one plan step on
        out = {"windows": self.states[idx], "goal": self.goals[s], "return": self.returns[s],
               "state": self.states[s], "next_state": next_state, "action": self.actions[s]}
        if self.episode is not None:
            out["episode"] = self.episode[rows]
        if self.arrived is not None:
            out["arrived"] = self.arrived[rows]
        if self.into_risk_from is not None:
            out["goes_into_risk"] = self.into_risk_from[s]
            out["goes_on_into_risk"] = self.into_risk_from[idx[:, -1]]  # after the window: its continuation
        return out

    def transition_actions(self) -> Tensor:
        return self.actions[self.starts]

    def window_returns(self, arrived_only: bool = False) -> Tensor:
        """[W] each window's Monte-Carlo return (arrived_only: of windows whose episode reached its goal)."""
        if not arrived_only:
            return self.returns[self.starts]
        if self.arrived is None:
            raise ValueError("the windows' episodes carry no terminations: which of them arrived is unknown")
        return self.returns[self.starts][self.arrived > 0]
