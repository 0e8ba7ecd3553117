"""Risk-sensitive guidance: the gradient of rho_alpha(critic(plan)) (minus an optional costmap
cost) with respect to the plan being denoised, clipped per plan (by its RMS over the plan's elements).

Two places to read the critic (planner.guidance_on, see docs/method_choices.md):
  "noisy" (default): critic(x_t, noise level). One critic forward+backward per step; the
                     denoiser runs without autograd. The critic is trained on noisy windows.
  "x0":              critic(x0_hat(x_t)) through the denoiser: backprop through the U-Net too.
The costmap is always read on the x0 estimate, since obstacles are where the *clean* plan goes;
in "noisy" mode the estimate is moved rigidly with x_t (d x0_hat / d x_t taken as identity), which
points the push the right way at no U-Net backward.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..costmap import Costmap
from ..normalizer import LimitsNormalizer
from ..risk import risk_measure, tail_weights


def risk_of_sorted(quantiles: Tensor, alpha: Tensor, risk_mode: str) -> Tensor:
    """risk_measure for quantiles known to be ascending (QuantileCritic's are, by construction):
    the same value without the sort, which a CUDA graph may fail to capture."""
    q = quantiles.flip(-1) if risk_mode == "seeking" else quantiles
    return (q * tail_weights(alpha, q.shape[-1]).to(q.dtype)).sum(-1)


@dataclass
class RiskGuidance:
    critic: nn.Module
    alpha: Tensor  # [M], one per plan in the batch
    risk_mode: str  # "averse" | "seeking"
    scale: float
    grad_clip: float
    on: str = "noisy"
    costmap: Costmap | None = None
    costmap_weight: float = 0.0
    plan_normalizer: LimitsNormalizer | None = None  # to look plans up in the costmap's world units ...
    start_xy: Tensor | None = None  # [M, 2] ... with each plan's frame origin
    quantiles_sorted: bool = False  # the critic's outputs are ascending: skip risk_measure's sort (fast path)

    def objective(self, window: Tensor, context: Tensor, noise_level: Tensor, clean_estimate: Tensor) -> Tensor:
        """Per-plan value to ascend: [M]. `clean_estimate` is where the costmap is read."""
        measure = risk_of_sorted if self.quantiles_sorted else risk_measure
        value = measure(self.critic(window, context, noise_level), self.alpha, self.risk_mode)
        if self.costmap is not None and self.costmap_weight > 0:
            value = value - self.costmap_weight * self.plan_cost(clean_estimate)
        return value

    def plan_cost(self, plans: Tensor) -> Tensor:
        """Mean costmap cost along normalised plans [M, H, D] -> [M]."""
        xy = self.plan_normalizer.unnormalize(plans)[..., :2] if self.plan_normalizer is not None else plans[..., :2]
        if self.start_xy is not None:
            xy = xy + self.start_xy[:, None, :]
        return self.costmap.lookup(xy).mean(-1)

    def noisy_gradient(self, x: Tensor, context: Tensor, x0: Tensor, noise_level: Tensor) -> Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            # Costmap on the denoiser's clean estimate, moved along with x_t (no U-Net backward).
            x0_moving = x0.detach() + (xg - xg.detach())
            value = self.objective(xg, context, noise_level.expand(x.shape[0]), x0_moving)
            (grad,) = torch.autograd.grad(value.sum(), xg)
        return self._clip(grad)

    def x0_gradient(self, x: Tensor, t: Tensor, context: Tensor, denoiser: nn.Module) -> tuple[Tensor, Tensor]:
        """Gradient through the denoiser's clean estimate; also returns that (detached) estimate."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = denoiser(xg, t, context)
            value = self.objective(x0, context, x0.new_zeros(x.shape[0]), x0)
            (grad,) = torch.autograd.grad(value.sum(), xg)
        return self._clip(grad), x0.detach()

    def _clip(self, grad: Tensor) -> Tensor:
        grad = grad.clone()
        grad[:, 0] = 0  # the current state is inpainted, never moved
        # Clip the root-mean-square per plan element, so the limit means the same for any horizon.
        rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp(min=1e-12)
        return grad * (self.grad_clip / rms).clamp(max=1.0)[:, None, None]
