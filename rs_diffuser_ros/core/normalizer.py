"""Per-dimension normalisation fitted on the dataset (Diffuser's LimitsNormalizer).

States and actions are mapped to [-1, 1] per dimension from the dataset's min/max, so the
diffusion noise, the guidance scale and the gradient clip all live in the same units.
Returns are standardised (mean/std): the critic's quantiles are learned and guided in
those units and turned back into returns for reporting.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


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
    def fit(cls, data: Tensor) -> "StandardNormalizer":
        data = torch.as_tensor(data, dtype=torch.float32)
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
    """Everything needed to map between world units and network units; saved in checkpoints."""

    state: LimitsNormalizer  # [x, y, sin, cos, v, omega]
    action: LimitsNormalizer  # [v, omega]
    returns: StandardNormalizer

    def goal_normalize(self, goal: Tensor) -> Tensor:
        # Goals are positions in the same frame as the state's (x, y): share those limits, so a
        # data set with a single goal still gets a well-defined, consistent goal encoding.
        return self.state.select(slice(0, 2)).normalize(goal)

    def to(self, device) -> "Normalizers":
        return Normalizers(self.state.to(device), self.action.to(device), self.returns)

    def to_dict(self) -> dict:
        return {"state": self.state.to_dict(), "action": self.action.to_dict(), "returns": self.returns.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizers":
        return cls(LimitsNormalizer.from_dict(d["state"]), LimitsNormalizer.from_dict(d["action"]),
                   StandardNormalizer.from_dict(d["returns"]))

    @classmethod
    def untrained_defaults(cls) -> "Normalizers":
        """Plausible world limits for a planner built from a config alone (random weights, for wiring)."""
        return cls(
            state=LimitsNormalizer(torch.tensor([-10.0, -10.0, -1.0, -1.0, -1.0, -2.0]),
                                   torch.tensor([10.0, 10.0, 1.0, 1.0, 1.0, 2.0])),
            action=LimitsNormalizer(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0])),
            returns=StandardNormalizer(0.0, 1.0),
        )
