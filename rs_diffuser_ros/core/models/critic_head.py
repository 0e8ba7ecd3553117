"""The critic's output head: what its N numbers stand for, and how they are kept in order.

Either kind gives N ascending numbers, one per 1/N of the return distribution's mass, which risk.py reads as
equally weighted pieces (CVaR_alpha = the weighted mean of the lowest alpha of them):
- midpoint quantiles (QR-DQN): the return at levels (2i + 1) / 2N, trained with the quantile-Huber loss;
- tail means (model.critic_tail_means): the mean return of each 1/N of the mass, so CVaR_k/N is the mean of the
  lowest k outputs exactly. Trained against Rockafellar-Uryasev targets (training/tail_mean_loss.py), which need the
  N - 1 boundary quantiles at levels k / N: the head predicts them too, as N - 1 more outputs.
Why tail means (docs/method_choices.md, "Tail means"): a rare, large loss (a crossing that meets two events in 2 %
of draws) moves a low quantile only by the sign of its error, so the lowest quantiles learned it slowly and stopped
short of it; the mean of the worst 1/N is pulled by the error's size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def head_width(n_quantiles: int, tail_means: bool) -> int:
    """Raw outputs of the critic's last layer: N values, and N - 1 boundary quantiles for tail means."""
    return 2 * n_quantiles - 1 if tail_means else n_quantiles


def ascending(out: Tensor) -> Tensor:
    """[B, K] raw numbers -> [B, K] ascending: a base plus cumulated softplus gaps (never crossing)."""
    base, gaps = out[:, :1], F.softplus(out[:, 1:])
    return torch.cat([base, base + gaps.cumsum(-1)], -1)


def split_head(out: Tensor, n_quantiles: int) -> tuple[Tensor, Tensor | None]:
    """The last layer's raw outputs -> (N ascending values, N - 1 ascending boundary quantiles or None)."""
    values = ascending(out[:, :n_quantiles])
    return values, (ascending(out[:, n_quantiles:]) if out.shape[1] > n_quantiles else None)
