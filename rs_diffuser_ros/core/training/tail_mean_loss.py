"""The tail-means critic's loss: each 1/N of the return distribution's mean, regressed on Rockafellar-Uryasev targets.

For a return Z and its alpha-quantile q, alpha CVaR_alpha = E[alpha q - (q - Z)+] (Rockafellar and Uryasev 2000); at
any other q the expectation is lower, and only by a term of second order in q's error, so boundary quantiles that are
still learning give targets close to the truth. The mean of the piece between levels k/N and (k+1)/N is N times the
difference of two such terms, so each sample gives an unbiased target for every piece's mean, and a squared error
is pulled by a rare loss in proportion to its size: the mean of the worst 1/N is learned where a low quantile, moved
only by its error's sign, crept (models/critic_head.py). Each piece is regressed on its own target, not each CVaR_k/N
(whose errors share the lowest pieces): on test_core_tail_means' spiky returns, after 4,000 steps the CVaR_k/N fit
still smeared the one-event pieces over -3.8..1.5, the per-piece fit had them within 0.3 of the truth. The boundary
quantiles learn with the quantile-Huber loss at their levels k/N. All in standardised return units.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .quantile_loss import batch_mean, quantile_huber_loss


def boundary_levels(n_quantiles: int, device=None) -> Tensor:
    """The levels k / N, k = 1..N-1, between the N equal pieces of the mass."""
    return torch.arange(1, n_quantiles, device=device, dtype=torch.float32) / n_quantiles


def piece_targets(boundaries: Tensor, target: Tensor) -> Tensor:
    """boundaries [B, N-1] (levels k/N), target [B, M] return samples -> [B, N, M] per-sample targets of the N pieces'
    means (their mean over samples is each piece's mean when the boundaries are the true quantiles)."""
    n = boundaries.shape[1] + 1
    alpha = boundary_levels(n, boundaries.device)[None, :, None]
    q = boundaries.detach()[:, :, None]
    z = target[:, None, :]
    tail = alpha * q - (q - z).clamp(min=0)  # [B, N-1, M]: alpha_k CVaR_k's per-sample term
    cumulative = torch.cat([torch.zeros_like(z), tail, z], 1)  # levels 0, 1/N, .., 1
    return n * cumulative.diff(dim=1)


def tail_mean_loss(means: Tensor, boundaries: Tensor, target: Tensor, kappa: float = 1.0,
                   weights: Tensor | None = None) -> Tensor:
    """means [B, N] ascending tail means, boundaries [B, N-1] quantiles at k/N, target [B] or [B, M] return samples,
    weights [B] (optional): each row's share of the batch mean (quantile_loss.batch_mean).

    The squared error of each piece's mean against its Rockafellar-Uryasev target, plus the boundaries'
    quantile-Huber loss."""
    if target.dim() == 1:
        target = target[:, None]
    n = means.shape[1]
    if boundaries.shape[1] != n - 1:
        raise ValueError(f"tail_mean_loss: {n} tail means need {n - 1} boundary quantiles, got {boundaries.shape[1]}")
    squared = batch_mean((means[:, :, None] - piece_targets(boundaries, target)).square().mean((1, 2)), weights)
    return squared + quantile_huber_loss(boundaries, target, kappa, levels=boundary_levels(n, means.device),
                                         weights=weights)
