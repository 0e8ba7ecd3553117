"""Per-episode outcomes and their aggregates with 95% confidence intervals.

A *violation* is an episode that entered a risky region or collided; per step, the share of
steps spent inside a risky region or in contact. A *catastrophic event* is a penalty that
actually struck (the env's `risk_event`), counted separately: entering the region is the risk
taken, the event is the dice coming up badly.

Intervals: Wilson for rates (well-behaved at 0% and 100%, where the normal approximation
collapses to a zero-width interval); percentile bootstrap over episodes for means, for
CVaR_0.1 of return (risky_nav.stats, so sim and evaluation report the same statistic) and for
the per-step rate, which pools steps but must resample whole episodes since steps within one
episode are not independent.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from risky_nav.stats import cvar, cvar_ci

CVAR_LEVEL = 0.1      # the CVaR_0.1 of return every table reports
Z_95 = 1.959963984540054
N_BOOTSTRAP = 2000


@dataclass
class EpisodeOutcome:
    """What one evaluation episode produced; the per-step arrays are kept for plots, not JSON."""

    setting: str
    episode: int               # index within the setting; the env is reset with seed + episode
    seed: int
    episode_return: float
    length: int                # control steps
    success: bool              # goal reached before the time limit
    collision_steps: int
    risky_steps: int           # steps ending with the robot's centre in a risky region
    violation_steps: int       # steps in a risky region or in collision
    risk_events: int           # catastrophic events (penalties that struck)
    path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32), repr=False)   # [T+1, 2] xy
    event_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)        # [T] event struck
    collision_flags: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)    # [T] in contact

    @property
    def collided(self) -> bool:
        return self.collision_steps > 0

    @property
    def entered_risky_region(self) -> bool:
        return self.risky_steps > 0

    @property
    def violation(self) -> bool:
        return self.entered_risky_region or self.collided

    def to_dict(self) -> dict:
        d = asdict(self)
        for per_step in ("path", "event_steps", "collision_flags"):
            d.pop(per_step)
        d.update(collided=self.collided, entered_risky_region=self.entered_risky_region, violation=self.violation)
        return d


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}

    def overlaps(self, other: "Estimate") -> bool:
        return self.low <= other.high and other.low <= self.high


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> Estimate:
    """Share successes/trials with its Wilson score interval."""
    if trials <= 0:
        raise ValueError(f"wilson_interval needs at least one trial, got trials={trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials={trials}], got {successes}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At 0 or all successes the bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(p, low, high)


def _resample_indices(n: int, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (n_boot, n))


def bootstrap_mean(values, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean with a percentile-bootstrap interval over the given (episode) values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_mean of no values")
    boot = values[_resample_indices(len(values), seed)].mean(axis=1)
    tail = (1 - level) / 2
    return Estimate(float(values.mean()), float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail)))


def bootstrap_ratio(numerators, denominators, seed: int = 0, level: float = 0.95) -> Estimate:
    """sum(numerators) / sum(denominators), resampling whole episodes (cluster bootstrap)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape or num.size == 0:
        raise ValueError(f"bootstrap_ratio needs two equally long non-empty arrays, got {num.shape} and {den.shape}")
    if den.sum() <= 0:
        raise ValueError("bootstrap_ratio: the denominators sum to zero")
    idx = _resample_indices(len(num), seed)
    boot = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)
    tail = (1 - level) / 2
    return Estimate(float(num.sum() / den.sum()), float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail)))


def cvar_of_returns(returns, alpha: float = CVAR_LEVEL) -> Estimate:
    """CVaR_alpha (mean of the worst alpha share of episodes) with its bootstrap interval."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size == 0:
        raise ValueError("cvar_of_returns of no episodes")
    value, low, high = cvar_ci(returns, alpha, n_boot=N_BOOTSTRAP)
    return Estimate(value, low, high)


# Column name -> (heading, kind): the order of the Markdown table and the JSON summary.
METRICS = {
    "mean_return": ("mean return", "mean"),
    "cvar_return": (f"CVaR_{CVAR_LEVEL:g} of return", "mean"),
    "violation_rate": ("violation rate (episodes)", "rate"),
    "violation_step_rate": ("violation rate (steps)", "rate"),
    "catastrophic_events": ("catastrophic events / episode", "mean"),
    "catastrophe_rate": ("episodes with a catastrophe", "rate"),
    "collision_rate": ("collision rate", "rate"),
    "success_rate": ("success rate", "rate"),
    "episode_length": ("episode length (steps)", "mean"),
}


def summarize(outcomes: list[EpisodeOutcome]) -> dict[str, Estimate]:
    """Every metric of METRICS over one setting's episodes."""
    if not outcomes:
        raise ValueError("summarize: no episodes")
    n = len(outcomes)
    returns = np.array([o.episode_return for o in outcomes])
    lengths = np.array([o.length for o in outcomes])
    return {
        "mean_return": bootstrap_mean(returns),
        "cvar_return": cvar_of_returns(returns),
        "violation_rate": wilson_interval(sum(o.violation for o in outcomes), n),
        "violation_step_rate": bootstrap_ratio([o.violation_steps for o in outcomes], lengths),
        "catastrophic_events": bootstrap_mean([o.risk_events for o in outcomes]),
        "catastrophe_rate": wilson_interval(sum(o.risk_events > 0 for o in outcomes), n),
        "collision_rate": wilson_interval(sum(o.collided for o in outcomes), n),
        "success_rate": wilson_interval(sum(o.success for o in outcomes), n),
        "episode_length": bootstrap_mean(lengths),
    }


__all__ = ["CVAR_LEVEL", "METRICS", "EpisodeOutcome", "Estimate", "bootstrap_mean", "bootstrap_ratio",
           "cvar", "cvar_of_returns", "summarize", "wilson_interval"]
