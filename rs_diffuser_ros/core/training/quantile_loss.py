"""Quantile-Huber loss (QR-DQN, Dabney et al. 2018) against Monte-Carlo return samples."""
from __future__ import annotations

import torch
from torch import Tensor

from ..risk import quantile_levels


def quantile_huber_loss(pred: Tensor, target: Tensor, kappa: float = 1.0, levels: Tensor | None = None,
                        weights: Tensor | None = None) -> Tensor:
    """pred [B, N] quantiles at the midpoint levels (or at `levels` [N]); target [B] or [B, M] samples of the return;
    weights [B] (optional): each row's share of the batch mean (`batch_mean`).

    Each quantile is pulled up by under-estimates with weight tau and down by over-estimates
    with weight 1 - tau, through a Huber penalty (quadratic within kappa) for stable gradients.
    """
    if target.dim() == 1:
        target = target[:, None]
    tau = (quantile_levels(pred.shape[-1], pred.device) if levels is None else levels)[None, :, None]  # [1, N, 1]
    u = target[:, None, :] - pred[:, :, None]  # [B, N, M]
    abs_u = u.abs()
    huber = torch.where(abs_u <= kappa, 0.5 * u**2, kappa * (abs_u - 0.5 * kappa))
    weight = (tau - (u.detach() < 0).float()).abs()
    return batch_mean((weight * huber / kappa).sum(1).mean(-1), weights)


def batch_mean(per_row: Tensor, weights: Tensor | None = None) -> Tensor:
    """The mean of per_row [B], or its weights-weighted mean (0 where every weight is 0). Weighting keeps the batch's
    shape where boolean indexing would make it depend on the data: no host sync, a shape a CUDA graph can hold."""
    if weights is None:
        return per_row.mean()
    weights = weights.to(per_row.dtype)
    return (per_row * weights).sum() / weights.sum().clamp(min=torch.finfo(per_row.dtype).tiny)
