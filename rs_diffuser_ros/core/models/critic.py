"""Monte-Carlo distributional critic: N quantiles of the discounted return of a plan window.

Input: a (possibly noisy) normalised plan-frame window [B, H, state_dim], the context (relative
goal and absolute start position, Normalizers.context), and the
noise level sqrt(1 - alpha_bar_t) of the window (0 for a clean plan). Guidance reads it on
noisy plans at the sampler's noise level, so no gradient has to flow through the denoiser
(docs/method_choices.md). Outputs are in standardised return units and sorted by construction (a base value
plus a cumulative sum of softplus gaps), so they never cross; they are midpoint quantiles or tail means
(critic_head.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .critic_head import head_width, split_head


class QuantileCritic(nn.Module):
    def __init__(self, horizon: int, state_dim: int, context_dim: int, n_quantiles: int = 32, hidden: int = 256,
                 tail_means: bool = False):
        super().__init__()
        self.n_quantiles = n_quantiles
        # An MLP on the flattened window: a window is only H x 6 numbers, and an MLP's backward pass
        # (paid at every guided denoising step) is several times cheaper on CPU than a conv encoder's.
        self.net = nn.Sequential(
            nn.Linear(horizon * state_dim + context_dim + 1, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, head_width(n_quantiles, tail_means)),
        )

    def forward(self, window: Tensor, context: Tensor, noise_level: Tensor) -> Tensor:
        """window [B, H, D], context [B, C], noise_level [B] -> ascending quantiles (or tail means) [B, N]."""
        return self.with_boundaries(window, context, noise_level)[0]

    def with_boundaries(self, window: Tensor, context: Tensor, noise_level: Tensor) -> tuple[Tensor, Tensor | None]:
        """(forward's values, the N - 1 boundary quantiles of a tail-means critic or None)."""
        out = self.net(torch.cat([window.flatten(1), context, noise_level[:, None]], -1))
        return split_head(out, self.n_quantiles)


class MapQuantileCritic(QuantileCritic):
    """The map-conditioned critic: QuantileCritic that also reads the map patch's channels at every
    state of the window (map_input.sample_along), so risk and walls along *this* plan enter its return
    distribution directly, and guidance's gradient flows through the lookup to the plan's positions."""

    def __init__(self, horizon: int, state_dim: int, context_dim: int, along_channels: int, n_quantiles: int = 32,
                 hidden: int = 256, tail_means: bool = False):
        super().__init__(horizon, state_dim + along_channels, context_dim, n_quantiles, hidden, tail_means)
        self.horizon, self.state_dim, self.along_channels = horizon, state_dim, along_channels

    def forward(self, window: Tensor, context: Tensor, noise_level: Tensor, along: Tensor | None = None) -> Tensor:
        """window [B, H, D], context [B, C], noise_level [B], along [B, H, >= A] -> ascending quantiles [B, N]
        (the first A channels along are read: a map gives all it has)."""
        return self.with_boundaries(window, context, noise_level, along)[0]

    def with_boundaries(self, window: Tensor, context: Tensor, noise_level: Tensor,
                        along: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if along is None:
            raise ValueError("MapQuantileCritic needs the map channels along the window (along=...)")
        along = along[..., :self.along_channels].to(window.dtype)
        return super().with_boundaries(torch.cat([window, along], -1), context, noise_level)

    @torch.no_grad()
    def grow_from(self, old: dict[str, Tensor]) -> None:
        """Load a trained critic that read fewer map channels per state: each state's old inputs keep their
        weights, the new channel's weights start at zero (same outputs as the old critic until trained)."""
        state = self.state_dict()
        key = "net.0.weight"
        h, per_new = self.horizon, self.state_dim + self.along_channels
        tail = state[key].shape[1] - h * per_new  # context and noise level
        per_old = (old[key].shape[1] - tail) // h
        grown = torch.zeros_like(state[key])
        for step in range(h):
            grown[:, step * per_new:step * per_new + per_old] = old[key][:, step * per_old:(step + 1) * per_old]
        grown[:, h * per_new:] = old[key][:, h * per_old:]
        state.update({k: v for k, v in old.items() if k != key})
        state[key] = grown
        self.load_state_dict(state)
