"""Monte-Carlo distributional critic: N quantiles of the discounted return of a plan window.

Input: a (possibly noisy) normalised plan-frame window [B, H, state_dim], the context (relative
goal and absolute start position, Normalizers.context), and the
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
    def __init__(self, horizon: int, state_dim: int, context_dim: int, n_quantiles: int = 32, hidden: int = 256):
        super().__init__()
        self.n_quantiles = n_quantiles
        # An MLP on the flattened window: a window is only H x 6 numbers, and an MLP's backward pass
        # (paid at every guided denoising step) is several times cheaper on CPU than a conv encoder's.
        self.net = nn.Sequential(
            nn.Linear(horizon * state_dim + context_dim + 1, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, n_quantiles),
        )

    def forward(self, window: Tensor, context: Tensor, noise_level: Tensor) -> Tensor:
        """window [B, H, D], context [B, C], noise_level [B] -> ascending quantiles [B, N]."""
        out = self.net(torch.cat([window.flatten(1), context, noise_level[:, None]], -1))
        base, gaps = out[:, :1], F.softplus(out[:, 1:])
        return torch.cat([base, base + gaps.cumsum(-1)], -1)
