"""Per-dimension normalisation fitted on the dataset (Diffuser's LimitsNormalizer).

States and actions are mapped to [-1, 1] per dimension from the dataset's min/max, so the
diffusion noise, the guidance scale and the gradient clip all live in the same units.
Returns are standardised (mean/std): the critic's quantiles are learned and guided in
those units and turned back into returns for reporting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .config import ModelConfig
from .plan_frame import relative_goal


@dataclass
class LimitsNormalizer:
    low: Tensor  # [D]
    high: Tensor  # [D]

    @classmethod
    def fit(cls, data: Tensor) -> "LimitsNormalizer":
        data = torch.as_tensor(data, dtype=torch.float32).reshape(-1, data.shape[-1])
        return cls(data.min(0).values, data.max(0).values)

    @property
    def scale(self) -> Tensor:
        # A constant dimension (e.g. v when the data set never moves) gets unit range, not 0/0.
        span = self.high - self.low
        return torch.where(span > 1e-6, span, torch.ones_like(span)) / 2

    def normalize(self, x: Tensor) -> Tensor:
        return (x - (self.low + self.high) / 2) / self.scale

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.scale + (self.low + self.high) / 2

    def select(self, dims: slice) -> "LimitsNormalizer":
        return LimitsNormalizer(self.low[dims], self.high[dims])

    def to(self, device) -> "LimitsNormalizer":
        return LimitsNormalizer(self.low.to(device), self.high.to(device))

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "LimitsNormalizer":
        return cls(torch.tensor(d["low"], dtype=torch.float32), torch.tensor(d["high"], dtype=torch.float32))


@dataclass
class StandardNormalizer:
    mean: float
    std: float

    @classmethod
    def fit(cls, data: Tensor, trim: float = 0.0) -> "StandardNormalizer":
        """Mean and std of `data`; trim > 0: of the values between its trim and 1 - trim quantiles only, so that
        a few extreme values do not set the scale (they are still normalised, just not used to fit)."""
        if not 0.0 <= trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim}")
        data = torch.as_tensor(data, dtype=torch.float32).flatten()
        if trim > 0 and data.numel() > 2:
            values = data.double().cpu().numpy()
            low, high = np.quantile(values, [trim, 1.0 - trim])
            data = data[torch.as_tensor((values >= low) & (values <= high))]
        return cls(float(data.mean()), max(float(data.std()) if data.numel() > 1 else 1.0, 1e-6))

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> "StandardNormalizer":
        return cls(float(d["mean"]), float(d["std"]))


@dataclass
class Normalizers:
    """Everything needed to map between world units and network units; saved in checkpoints.

    Plans are denoised in the *plan frame* (plan_frame.py): positions relative to the plan's
    first state. That makes a 10 cm step 5-10x larger in network units than in a map-wide
    normalisation, which the denoiser needs to keep consecutive states consistent.
    """

    plan: LimitsNormalizer  # plan-frame window states [dx, dy, the state's other numbers]
    goal: LimitsNormalizer  # goal relative to the plan's first position [dx, dy, the goal's other numbers]
    position: LimitsNormalizer  # absolute position [x, y] of the plan's first state (where on the map)
    action: LimitsNormalizer  # the robot's [v, omega], the point mass's [dx, dy]
    returns: StandardNormalizer

    def context(self, start: Tensor, goal: Tensor) -> Tensor:
        """Conditioning of denoiser and critic: [normalised relative goal, normalised start position] [B, G + 2]."""
        return torch.cat([self.goal.normalize(relative_goal(goal, start)), self.position.normalize(start[..., :2])], -1)

    def to(self, device) -> "Normalizers":
        return Normalizers(self.plan.to(device), self.goal.to(device), self.position.to(device), self.action.to(device),
                           self.returns)

    def to_dict(self) -> dict:
        return {"plan": self.plan.to_dict(), "goal": self.goal.to_dict(), "position": self.position.to_dict(),
                "action": self.action.to_dict(), "returns": self.returns.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizers":
        return cls(LimitsNormalizer.from_dict(d["plan"]), LimitsNormalizer.from_dict(d["goal"]),
                   LimitsNormalizer.from_dict(d["position"]), LimitsNormalizer.from_dict(d["action"]),
                   StandardNormalizer.from_dict(d["returns"]))

    @classmethod
    def untrained_defaults(cls, model: ModelConfig | None = None) -> "Normalizers":
        """Plausible world limits for a planner built from a config alone (random weights, for wiring): the
        navigation robot's for its 6-number state, else positions +-3.5 m in a window and the rest +-1."""
        model = model or ModelConfig()
        t = torch.tensor
        plan = [3.5, 3.5, 1.0, 1.0, 1.0, 2.0] if model.state_dim == 6 else [3.5, 3.5] + [1.0] * (model.state_dim - 2)
        goal = [12.0, 12.0] + [1.0] * (model.goal_dim - 2)
        return cls(
            plan=LimitsNormalizer(-t(plan), t(plan)),
            goal=LimitsNormalizer(-t(goal), t(goal)),
            position=LimitsNormalizer(t([0.0, 0.0]), t([12.0, 12.0])),
            action=LimitsNormalizer(t([-1.0, -2.0]), t([1.0, 2.0])),
            returns=StandardNormalizer(0.0, 1.0),
        )
