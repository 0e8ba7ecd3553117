"""Risk measures of a return distribution given by N equally weighted quantiles.

Quantile i (sorted ascending) stands for the probability mass [i/N, (i+1)/N). The lower
tail CVaR_alpha is the mean return over the worst alpha of that mass; when alpha*N is not
an integer the boundary quantile counts with its fractional share, so the measure moves
continuously with alpha. alpha = 1 is the mean (risk-neutral). The upper tail (risk-seeking)
is the same on the mirrored distribution. All of it is differentiable in the quantiles.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

RISK_MODES = ("averse", "seeking")


def check_alpha(alpha) -> None:
    values = alpha.detach().flatten().tolist() if isinstance(alpha, Tensor) else [alpha]
    for a in values:
        if not isinstance(a, (int, float)) or isinstance(a, bool) or not math.isfinite(a) or not 0.0 < a <= 1.0:
            raise ValueError(f"alpha must be a number in (0, 1] (1 = risk-neutral), got {a!r}")


def check_risk_mode(risk_mode: str) -> None:
    if risk_mode not in RISK_MODES:
        raise ValueError(f"risk_mode must be one of {RISK_MODES} (alpha=1 is neutral in both), got {risk_mode!r}")


def tail_weights(alpha: Tensor, n_quantiles: int) -> Tensor:
    """Weights [..., N] over ascending quantiles whose dot product is the lower-tail CVaR_alpha."""
    alpha = torch.as_tensor(alpha, dtype=torch.float32)
    mass = alpha[..., None] * n_quantiles  # tail mass in units of one quantile
    i = torch.arange(n_quantiles, device=alpha.device, dtype=torch.float32)
    return (mass - i).clamp(0, 1) / mass


def risk_measure(quantiles: Tensor, alpha, risk_mode: str = "averse") -> Tensor:
    """rho_alpha of each distribution: quantiles [..., N] -> [...].

    averse: CVaR_alpha of the lower tail; seeking: mean of the upper alpha tail; alpha=1: mean.
    alpha is a float or a tensor broadcastable to quantiles.shape[:-1].
    """
    check_risk_mode(risk_mode)
    q = quantiles.sort(dim=-1).values  # the critic's are sorted already; any caller's may not be
    return risk_of_sorted(q, torch.as_tensor(alpha, dtype=q.dtype, device=q.device), risk_mode)


def risk_of_sorted(quantiles: Tensor, alpha: Tensor, risk_mode: str) -> Tensor:
    """risk_measure for quantiles known to be ascending (QuantileCritic's are, by construction):
    the same value without the sort, which a CUDA graph may fail to capture."""
    q = quantiles.flip(-1) if risk_mode == "seeking" else quantiles
    return (q * tail_weights(alpha, q.shape[-1]).to(q.dtype)).sum(-1)


def quantile_levels(n_quantiles: int, device=None) -> Tensor:
    """Midpoint levels tau_i = (2i + 1) / 2N the critic's outputs estimate."""
    return (torch.arange(n_quantiles, device=device, dtype=torch.float32) * 2 + 1) / (2 * n_quantiles)
