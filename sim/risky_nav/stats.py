"""Return statistics with confidence intervals: mean (normal approximation) and CVaR (bootstrap)."""
from __future__ import annotations

import numpy as np


def cvar(returns: np.ndarray, alpha: float = 0.1) -> float:
    """Mean of the worst `alpha` fraction of returns (at least one episode)."""
    returns = np.sort(np.asarray(returns, dtype=np.float64))
    k = max(1, int(np.ceil(alpha * len(returns))))
    return float(returns[:k].mean())


def mean_ci(values: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """(mean, low, high): 95% normal-approximation interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half


def resampled_cvars(returns, draws: int, rng: np.random.Generator, alpha: float = 0.1) -> np.ndarray:
    """[draws]: the CVaR_alpha (cvar's rule) of `draws` resamples of `returns` with replacement, all at once."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size == 0:
        raise ValueError("resampled_cvars of no episodes")
    samples = np.sort(returns[rng.integers(0, len(returns), (draws, len(returns)))], axis=1)
    k = max(1, int(np.ceil(alpha * len(returns))))
    return samples[:, :k].mean(axis=1)


def cvar_ci(returns: np.ndarray, alpha: float = 0.1, n_boot: int = 2000,
            level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(CVaR_alpha, low, high): percentile-bootstrap interval over episodes."""
    returns = np.asarray(returns, dtype=np.float64)
    boot = resampled_cvars(returns, n_boot, np.random.default_rng(seed), alpha)
    tail = (1 - level) / 2
    return cvar(returns, alpha), float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail))
