"""A map critic that reads the window one state at a time: the same small network on every state (with the
map channels there and the state's place in the window), pooled over the window, then a head to the quantiles.

Why (docs/method_choices.md, "Why the general models take the short cut"): the flat critic (critic.py) gives each
of the window's 32 states its own first-layer weights, so "this plan enters a risky cell" must be learned 32
times over, once per step at which it can happen, from the few windows that do; a general critic fitted that way
moved the short cut and the way round alike when the risk layer was taken away, even from starts just before a
risky region. Shared per-state weights learn it once; max-pooling keeps a single risky state visible; the mean
keeps how much of the window is spent there; the last state's features carry where the window leaves the robot
(the route channels there say what the rest of the way costs). Order within the window enters through each
state's time fraction.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .critic_head import head_width, split_head


class PerStepMapCritic(nn.Module):
    def __init__(self, horizon: int, state_dim: int, context_dim: int, along_channels: int, n_quantiles: int = 32,
                 hidden: int = 256, step_hidden: int = 128, read_context: int | None = None,
                 reads_continuation: bool = False, tail_means: bool = False):
        """read_context: the first this many context numbers are read (None: all; the goal alone is goal_dim).
        reads_continuation: the context has one more number, last, the plan's continuation label (0 stays out of
        risk after the window, 1 goes on into it; model.critic_reads_continuation), read as well."""
        super().__init__()
        self.horizon, self.state_dim, self.along_channels = horizon, state_dim, along_channels
        self.n_quantiles = n_quantiles
        self.context_dim, self.reads_continuation = context_dim + int(reads_continuation), reads_continuation
        self.read_context = context_dim if read_context is None else read_context
        self.step_net = nn.Sequential(
            nn.Linear(state_dim + along_channels + 1, step_hidden), nn.SiLU(),
            nn.Linear(step_hidden, step_hidden), nn.SiLU(),
        )
        self.head = nn.Sequential(
            nn.Linear(3 * step_hidden + self.read_context + int(reads_continuation) + 1, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, head_width(n_quantiles, tail_means)),
        )
        self.register_buffer("time", torch.linspace(0.0, 1.0, horizon)[None, :, None], persistent=False)

    def forward(self, window: Tensor, context: Tensor, noise_level: Tensor, along: Tensor | None = None) -> Tensor:
        """window [B, H, D], context [B, C], noise_level [B], along [B, H, >= A] -> ascending quantiles [B, N]
        (or tail means: critic_head.py)."""
        return self.with_boundaries(window, context, noise_level, along)[0]

    def with_boundaries(self, window: Tensor, context: Tensor, noise_level: Tensor,
                        along: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(forward's values, the N - 1 boundary quantiles of a tail-means critic or None)."""
        if along is None:
            raise ValueError("PerStepMapCritic needs the map channels along the window (along=...)")
        if context.shape[-1] != self.context_dim:  # a missing label would silently read a map number in its place
            label = " (the last the continuation label)" if self.reads_continuation else ""
            raise ValueError(f"PerStepMapCritic expects a context of {self.context_dim} numbers{label}, "
                             f"got {context.shape[-1]}")
        b = window.shape[0]
        read = context[:, :self.read_context]
        if self.reads_continuation:
            read = torch.cat([read, context[:, -1:]], -1)
        steps = torch.cat([window, along[..., :self.along_channels].to(window.dtype),
                           self.time.to(window.dtype).expand(b, -1, -1)], -1)
        h = self.step_net(steps)  # [B, H, step_hidden]
        pooled = torch.cat([h.mean(1), h.amax(1), h[:, -1]], -1)
        return split_head(self.head(torch.cat([pooled, read, noise_level[:, None]], -1)), self.n_quantiles)
