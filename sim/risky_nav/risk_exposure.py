"""Which risky regions a driven path was exposed to: per step, each region's event probability p and penalty C.

The environment (env.py, `step`) draws one event per region whose box holds the robot's centre after the step,
independently, with that region's p, and subtracts its C. Given an episode's positions after each step, this
gives the same per-region p and C (0 outside), so a training pipeline can re-draw the events an episode's return
depends on (rs_diffuser_ros/core/training/risk_relabel.py) without running the sim again.
"""
from __future__ import annotations

import numpy as np

from risky_nav.layout import Layout


def region_exposure(layout: Layout, positions, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """positions [T, 2] (the robot's x, y after each step) -> (p [T, R], penalty [T, R]) of the layout's R risky
    regions, 0 where the position is outside a region's box grown by `margin` (boundaries inside, as the env
    checks them; a small margin absorbs float32 rounding of recorded positions)."""
    xy = np.asarray(positions, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"positions must be [T, 2], got shape {xy.shape}")
    t, r = len(xy), len(layout.risky_regions)
    p, penalty = np.zeros((t, r)), np.zeros((t, r))
    for j, region in enumerate(layout.risky_regions):
        b, m = region.box, margin
        inside = (b.x_min - m <= xy[:, 0]) & (xy[:, 0] <= b.x_max + m) & (b.y_min - m <= xy[:, 1]) & (xy[:, 1] <= b.y_max + m)
        p[inside, j], penalty[inside, j] = region.p, region.penalty
    return p, penalty


def observed_penalties(layout: Layout, episode: dict, p: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """[T]: the risk penalty each step of a recorded episode paid (0 without an event), from its `risk_events` flags
    and its exposure (p, penalty: region_exposure of its positions after each step).

    One region under the robot: its C. Several (overlapping boxes, each drawing its own event): the subset of them
    whose summed C best explains the step's reward once the other terms (step cost, progress, collision, goal
    bonus: env.py) are taken off it."""
    events = np.asarray(episode["risk_events"], dtype=bool)
    exposed = penalty > 0
    if (events & ~exposed.any(1)).any():
        t = int(np.argmax(events & ~exposed.any(1)))
        raise ValueError(f"step {t} records a risk event outside every risky region of {layout.name}: the episode "
                         f"was not driven on this layout")
    out = np.where(events, penalty.sum(1), 0.0)
    for t in np.flatnonzero(events & (exposed.sum(1) > 1)):
        residual = _risk_free_reward(layout, episode, t) - float(episode["rewards"][t])
        regions = np.flatnonzero(exposed[t])
        subsets = [[int(regions[k]) for k in range(len(regions)) if mask >> k & 1] for mask in range(1, 1 << len(regions))]
        out[t] = min((penalty[t, s].sum() for s in subsets), key=lambda c: abs(c - residual))
    return out


def _risk_free_reward(layout: Layout, episode: dict, t: int) -> float:
    """Step t's reward without its risk penalty, as env.py composes it from the recorded positions and flags."""
    obs, w = episode["observations"], layout.reward
    goal = obs[t, 6:8].astype(np.float64)
    before = float(np.hypot(*(goal - obs[t, :2])))
    after = float(np.hypot(*(goal - obs[t + 1, :2])))
    reward = -w.step_cost + w.progress * (before - after)
    if episode["collisions"][t]:
        reward -= w.collision_penalty
    if episode["terminations"][t]:
        reward += w.goal_bonus
    return reward
