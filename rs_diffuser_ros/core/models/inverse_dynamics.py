"""Inverse dynamics: the action (v, omega) that takes the robot from s_t to s_{t+1}.

Works in normalised units: input is s_t and the step s_{t+1} - s_t, output the normalised action.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class InverseDynamics(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * state_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, action_dim),
        )

    def forward(self, state: Tensor, next_state: Tensor) -> Tensor:
        return self.net(torch.cat([state, next_state - state], -1))
