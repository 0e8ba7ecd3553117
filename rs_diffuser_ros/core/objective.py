"""The plan objective: the one definition of "a good plan" that guidance ascends and selection maximises.

A sum of small terms (in the spirit of Nav2 MPPI's critics), each with `score()` -> [M], higher is better:
  RiskTerm     rho_alpha of the critic's return quantiles: the method's objective;
  CostmapTerm  minus weight x the mean costmap cost along the plan: the optional obstacle term.
Guidance takes the gradient of `PlanObjective.score` at every DDIM step (the critic reading the noisy
window, the costmap the clean estimate: sampling/guidance.py); selection scores the clean candidates
with the same object (planner.py). A new term (e.g. for a map-conditioned model) is one more class here.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .conditioning import MapView
from .costmap import Costmap
from .normalizer import LimitsNormalizer
from .risk import risk_measure, risk_of_sorted


@dataclass
class RiskTerm:
    critic: nn.Module
    alpha: Tensor  # [M], one per plan in the batch
    risk_mode: str  # "averse" | "seeking"
    quantiles_sorted: bool = False  # the critic's outputs are ascending: skip risk_measure's sort (CUDA graphs)
    map_view: MapView | None = None  # a map-conditioned critic reads the map patch along each window

    def quantiles(self, window: Tensor, context: Tensor, noise_level: Tensor) -> Tensor:
        """The critic's return quantiles [M, N] of windows [M, H, D] at noise levels [M] (0: clean)."""
        if self.map_view is not None:
            return self.critic(window, context, noise_level, self.map_view.along(window))
        return self.critic(window, context, noise_level)

    def score(self, quantiles: Tensor) -> Tensor:
        """rho_alpha per plan, in the units of `quantiles` (standardised or return units alike)."""
        if self.quantiles_sorted:
            return risk_of_sorted(quantiles, self.alpha, self.risk_mode)
        return risk_measure(quantiles, self.alpha, self.risk_mode)


@dataclass
class CostmapTerm:
    costmap: Costmap
    weight: float
    plan_normalizer: LimitsNormalizer  # to look normalised plans up in the costmap's world units ...
    start_xy: Tensor  # [M, 2] ... with each plan's frame origin (plans live in the plan frame)

    def cost(self, plans: Tensor) -> Tensor:
        """Mean costmap cost along normalised plans [M, H, D] -> [M]."""
        xy = self.plan_normalizer.unnormalize(plans)[..., :2] + self.start_xy[:, None, :]
        return self.costmap.lookup(xy).mean(-1)

    def score(self, plans: Tensor) -> Tensor:
        return -(self.weight * self.cost(plans))


@dataclass
class PlanObjective:
    risk: RiskTerm
    costmap: CostmapTerm | None = None  # None: no costmap, or its weight is 0

    def score(self, quantiles: Tensor, plans: Tensor) -> Tensor:
        """Per-plan value [M] from the critic's quantiles [M, N] and the (clean) plans [M, H, D] the
        costmap is read on. Selection and guidance both call this, so they rank plans the same way."""
        value = self.risk.score(quantiles)
        if self.costmap is not None:
            value = value + self.costmap.score(plans)
        return value
