"""How the networks are told their task: the context vector of the denoiser and the critic, and, for a
map-conditioned model, the map patch the critic reads along each plan.

Per-map model (model.map_patch_cells = 0): context = [relative goal, absolute start position]
(Normalizers.context): it knows its one map by coordinates.
Map-conditioned model: context = [relative goal, map_encoder(egocentric patch)], computed once per
robot and replan; the critic also reads the patch's channels at each state of the plan (`MapView`),
so it sees the same map the denoiser does (docs/method_choices.md, "Map conditioning"); the planner's critic reads
risk at the map's own resolution too (risk_read.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .map_input import sample_along
from .normalizer import LimitsNormalizer, Normalizers
from .plan_frame import relative_goal
from .risk_read import MapRiskRead


@dataclass
class MapView:
    """One batch's patches as the critic reads them: rows b*K .. b*K+K-1 of a plan batch belong to patch b."""

    patches: Tensor  # [B, C, P, P]
    extent_m: float
    plan: LimitsNormalizer  # the plan-frame normaliser: normalised windows -> metres from the robot
    # The planner's critic also reads risk at the map's own resolution (risk_read.py); None: the patch alone (training,
    # the denoiser).
    risk_read: MapRiskRead | None = None

    def along(self, windows: Tensor) -> Tensor:
        """Normalised plan-frame windows [B*K, H, D] -> the patch channels at their positions [B*K, H, C]."""
        xy = self.plan.select(slice(0, 2)).unnormalize(windows[..., :2])
        read = sample_along(self.patches, xy, self.extent_m)
        return read if self.risk_read is None else self.risk_read.sharpen(read, xy)


def model_context(normalizers: Normalizers, map_encoder: nn.Module, starts: Tensor, goals: Tensor,
                  patches: Tensor | None) -> Tensor:
    """Context [B, C] of start states [B, >=2] and goals [B, G]; patches [B, 4, P, P] for a map model, else None."""
    if patches is None:
        return normalizers.context(starts, goals)
    return torch.cat([normalizers.goal.normalize(relative_goal(goals, starts)), map_encoder(patches)], -1)
