"""Risk-event relabelling: each batch, the critic's target return gets fresh draws of the random risk events.

Why (docs/method_choices.md, "Risk-event relabelling"): on generated maps a dataset holds a few crossings of each
map's risky region (10 episodes a map: 4-5 crossings, an event in 12-25 % of them), so whether *this* map's
crossings happened to meet an event is noise the critic can fit. A map critic did: on unseen maps its CVaR_0.1 of
a window about to cross came out 5 return units lighter than the data's, and the trade-off did not carry. A
return is its risk-free part plus the penalties of independent per-step events whose probability p and cost C
the risky region fixes; the recorded path says which regions each step was in. Re-drawing those events every
time a window is sampled gives the critic, in expectation, the return distribution of the recorded path itself
(as HER relabels rewards with the known reward function), not one draw of it. Trajectories, actions and every
other reward term stay as recorded; only the events are re-drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .windows import WindowDataset, discounted_returns


@dataclass
class RiskEventRelabel:
    risk_free_returns: Tensor  # [N] each observation's return with its episode's recorded risk penalties taken off
    p: Tensor  # [N, R] event probability of each region for the step after observation i (0 outside, at episode ends)
    penalty: Tensor  # [N, R] the matching penalty C
    max_steps: int  # the longest remaining episode of any window: how far a return sums
    gamma: float

    @classmethod
    def from_exposure(cls, data: WindowDataset, exposures: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                      ) -> "RiskEventRelabel":
        """exposures: per episode of `data`, in its order, (p [T, R_e], penalty [T, R_e], observed [T]): the
        per-region probability and cost of each step's events and the penalty the step actually paid."""
        if len(exposures) == 0:
            raise ValueError("risk-event relabelling needs each episode's exposure, got none")
        regions = max(1, max(p.shape[1] for p, _, _ in exposures))
        p_all, c_all, free = [], [], []
        offset = 0
        for i, (p, c, observed) in enumerate(exposures):
            t = len(observed)
            if p.shape != (t, p.shape[1]) or c.shape != p.shape:
                raise ValueError(f"episode {i}: exposure p {p.shape} and penalty {c.shape} must be [{t}, R]")
            first_window = offset - i  # episode i's windows follow the i episodes before, each one window short
            if not (0 <= first_window < len(data) and int(data.last[first_window]) == offset + t):
                raise ValueError(f"episode {i}: {t} steps do not match the window dataset's episode at {offset}")
            pad = ((0, 1), (0, regions - p.shape[1]))  # the episode's last observation: no step after it
            p_all.append(np.pad(p, pad))
            c_all.append(np.pad(c, pad))
            free.append(discounted_returns(np.asarray(observed, dtype=np.float64), data.gamma))
            free.append([0.0])
            offset += t + 1
        if offset != len(data.returns):
            raise ValueError(f"exposure covers {offset} observations, the window dataset holds {len(data.returns)}: "
                             f"give one per episode, in the dataset's order")
        as_t = lambda xs: torch.as_tensor(np.concatenate(xs), dtype=torch.float32)  # noqa: E731
        max_steps = int((data.last - data.starts).max())
        return cls(data.returns + as_t(free), as_t(p_all), as_t(c_all), max_steps, data.gamma)

    def to(self, device) -> "RiskEventRelabel":
        return RiskEventRelabel(self.risk_free_returns.to(device), self.p.to(device), self.penalty.to(device),
                                self.max_steps, self.gamma)

    def returns(self, data: WindowDataset, rows: Tensor, generator: torch.Generator | None = None,
                draws: int | None = None) -> Tensor:
        """[B]: windows `rows`' returns with every risk event from the window's start to its episode's end
        drawn afresh; with `draws`, [B, draws]: that many independent draws of each window's events."""
        s, last = data.starts[rows], data.last[rows]
        steps = torch.arange(self.max_steps, device=rows.device)
        idx = s[:, None] + steps  # [B, L] the steps the return sums over ...
        inside = idx < last[:, None]  # ... up to the episode's last observation, which has no step after it
        idx = torch.where(inside, idx, s[:, None])
        p, c = self.p[idx], self.penalty[idx]  # [B, L, R]
        u = torch.rand((draws or 1, *p.shape), device=p.device, generator=generator)  # [M, B, L, R]
        paid = ((u < p) * c).sum(-1) * inside  # [M, B, L]
        if self.gamma != 1.0:
            paid = paid * self.gamma ** steps.to(paid.dtype)
        out = self.risk_free_returns[s] - paid.sum(-1)  # [M, B]
        return out[0] if draws is None else out.T
