"""Monte-Carlo distributional critic: N quantiles of the discounted return of a plan window.

Input: a (possibly noisy) normalised window [B, H, state_dim], the normalised goal, and the
noise level sqrt(1 - alpha_bar_t) of the window (0 for a clean plan). Guidance reads it on
noisy plans at the sampler's noise level, so no gradient has to flow through the denoiser
(docs/method_choices.md). Output quantiles are in standardised return units and sorted by
construction (a base value plus a cumulative sum of softplus gaps), so they never cross.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class QuantileCritic(nn.Module):
    def __init__(self, horizon: int, state_dim: int, goal_dim: int, n_quantiles: int = 32, hidden: int = 128):
        super().__init__()
        self.n_quantiles = n_quantiles
        # Strided convolutions summarise the window along time; an MLP reads that with goal and noise level.
        self.encoder = nn.Sequential(
            nn.Conv1d(state_dim, 32, 5, stride=2, padding=2), nn.Mish(),
            nn.Conv1d(32, 64, 5, stride=2, padding=2), nn.Mish(),
            nn.Conv1d(64, 64, 5, stride=2, padding=2), nn.Mish(),
        )
        encoded = 64 * ((((horizon + 1) // 2 + 1) // 2 + 1) // 2)
        self.head = nn.Sequential(
            nn.Linear(encoded + state_dim + goal_dim + 1, hidden), nn.Mish(),
            nn.Linear(hidden, hidden), nn.Mish(),
            nn.Linear(hidden, n_quantiles),
        )

    def forward(self, window: Tensor, goal: Tensor, noise_level: Tensor) -> Tensor:
        """window [B, H, D], goal [B, G], noise_level [B] -> ascending quantiles [B, N]."""
        features = self.encoder(window.transpose(1, 2)).flatten(1)
        out = self.head(torch.cat([features, window[:, 0], goal, noise_level[:, None]], -1))
        base, gaps = out[:, :1], F.softplus(out[:, 1:])
        return torch.cat([base, base + gaps.cumsum(-1)], -1)
