"""The plan frame: a window's positions relative to its first state (axes stay world-aligned).

A state's first two numbers are its position [x, y], whatever follows (ModelConfig.state_dim), and
so are a goal's: only those two are made relative, the rest pass as they are.

The denoiser works on relative windows, which are independent of where on the map the robot
is and have 5-10x finer resolution in normalised units; where the robot is reaches the
networks through the conditioning context instead (Normalizers.context).
"""
from __future__ import annotations

import torch
from torch import Tensor


def to_plan_frame(windows: Tensor) -> Tensor:
    """World windows [..., H, D] -> plan-frame windows (x, y minus the first state's)."""
    out = windows.clone()
    out[..., :2] = windows[..., :2] - windows[..., :1, :2]
    return out


def to_world(plans: Tensor, start_xy: Tensor) -> Tensor:
    """Plan-frame windows [B, H, D] + start positions [B, 2] -> world windows."""
    out = plans.clone()
    out[..., :2] = plans[..., :2] + start_xy[:, None, :]
    return out


def start_in_plan_frame(states: Tensor) -> Tensor:
    """The first state of every plan in its own frame: [0, 0, the state's other numbers]."""
    out = states.clone()
    out[..., :2] = 0
    return out


def relative_goal(goals: Tensor, starts: Tensor) -> Tensor:
    """Goals [..., G] seen from start states [..., >= 2]: the goal position minus the start's."""
    out = goals.clone()
    out[..., :2] = goals[..., :2] - starts[..., :2]
    return out


def fit_limits_over_windows(windows_of, n: int, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Per-dimension min/max of plan-frame windows, computed in chunks (all windows can be ~1e8 numbers)."""
    low = high = None
    for i in range(0, n, chunk):
        w = to_plan_frame(windows_of(torch.arange(i, min(i + chunk, n)))).flatten(0, -2)
        lo, hi = w.min(0).values, w.max(0).values
        low = lo if low is None else torch.minimum(low, lo)
        high = hi if high is None else torch.maximum(high, hi)
    return low, high
