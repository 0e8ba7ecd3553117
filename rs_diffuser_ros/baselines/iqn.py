"""Implicit quantile network (IQN, Dabney et al. 2018) critic and its loss, shared by CODAC and O-RAAC.

Z(s, a, tau): the tau-quantile of the return of taking a in s. The (s, a) features are gated
element-wise by an embedding of tau built from cos(pi * i * tau), i = 1..n_cos, then mapped to one
number per tau. CODAC's `QuantileMlp` (distributional/networks.py) is this with LayerNorm and a
sigmoid gate; O-RAAC's `DeterministicNN_IQN` is this without LayerNorm and with a ReLU gate.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rs_diffuser_ros.baselines.random_draws import uniform


class IQNCritic(nn.Module):
    def __init__(self, input_dim: int, base_hidden: tuple[int, ...], merge_hidden: int, n_cos: int,
                 layer_norm: bool, tau_gate: str):
        super().__init__()
        if tau_gate not in ("sigmoid", "relu"):
            raise ValueError(f"tau_gate must be 'sigmoid' or 'relu', got {tau_gate!r}")
        norm = (lambda width: nn.LayerNorm(width)) if layer_norm else (lambda width: nn.Identity())
        layers, width = [], input_dim
        for size in base_hidden:
            layers += [nn.Linear(width, size), norm(size), nn.ReLU()]
            width = size
        self.base = nn.Sequential(*layers)
        self.tau_embedding = nn.Sequential(nn.Linear(n_cos, width), norm(width),
                                           nn.Sigmoid() if tau_gate == "sigmoid" else nn.ReLU())
        self.merge = nn.Sequential(nn.Linear(width, merge_hidden), norm(merge_hidden), nn.ReLU())
        self.head = nn.Linear(merge_hidden, 1)
        self.register_buffer("frequencies", torch.arange(1, n_cos + 1, dtype=torch.float32) * math.pi)

    def forward(self, obs: Tensor, action: Tensor, tau: Tensor) -> Tensor:
        """obs [B, D], action [B, A], tau [B, N] -> quantile values [B, N]."""
        features = self.base(torch.cat([obs, action], dim=-1))                  # [B, C]
        gate = self.tau_embedding(torch.cos(tau[..., None] * self.frequencies))  # [B, N, C]
        return self.head(self.merge(gate * features[:, None, :])).squeeze(-1)


def quantile_huber_loss(pred: Tensor, tau: Tensor, target: Tensor, target_weight: Tensor | None = None) -> Tensor:
    """Quantile-Huber loss of pred [B, N] at levels tau [B, N] against target samples [B, M].

    target_weight [B, M] (summing to 1 over M) weights the target samples: CODAC weights them by
    their quantile-fraction widths; None means equal weights (O-RAAC's mean over all pairs).
    """
    target = target.detach()
    if target_weight is None:
        target_weight = torch.full_like(target, 1.0 / target.shape[1])
    pred_, target_ = torch.broadcast_tensors(pred[:, :, None], target[:, None, :])      # [B, N, M]
    huber = F.smooth_l1_loss(pred_, target_, reduction="none")
    below = (pred_ > target_).float()                 # the quantile over-estimates this sample
    weight = (tau.detach()[:, :, None] - below).abs() * target_weight.detach()[:, None, :]
    return (weight * huber).sum(-1).mean()


def random_fractions(batch: int, n: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """CODAC's IQN fractions: n random widths (U(0,1) + 0.1, normalised) -> (tau_hat [B, n], widths [B, n]).

    tau_hat are the midpoints of the cumulative widths, so they cover (0, 1) in order; the +0.1
    keeps any width from collapsing to zero.
    """
    widths = uniform((batch, n), generator, torch.device(device)) + 0.1
    widths = widths / widths.sum(-1, keepdim=True)
    tau = torch.cumsum(widths, dim=-1)
    tau_hat = tau - widths / 2
    return tau_hat, widths


def soft_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """target <- (1 - rate) target + rate source (Polyak averaging)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, rate)
