"""Risk-sensitive guidance: the gradient of the plan objective (core/objective.py: rho_alpha of the
critic, minus an optional costmap cost) with respect to the plan being denoised, clipped per plan
(by its RMS over the plan's elements).

Two places to read the critic (planner.guidance_on, see docs/method_choices.md):
  "noisy" (default): critic(x_t, noise level). One critic forward+backward per step; the
                     denoiser runs without autograd. The critic is trained on noisy windows.
  "x0":              critic(x0_hat(x_t)) through the denoiser: backprop through the U-Net too.
The costmap is always read on the x0 estimate, since obstacles are where the *clean* plan goes;
in "noisy" mode the estimate is moved rigidly with x_t (d x0_hat / d x_t taken as identity), which
points the push the right way at no U-Net backward.

Each way to compute the gradient is a guide step of the one DDIM loop (sampler.py), called as
guide(x_t, step, denoise) -> (clean estimate x0_hat, gradient or None). It is handed the denoise
step because x0 guidance must run the denoiser inside its own autograd.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..objective import PlanObjective
from . import critic_gradient

Denoise = Callable[[Tensor, int], Tensor]  # (x_t, step) -> x0_hat


@dataclass
class RiskGuidance:
    objective: PlanObjective
    scale: float  # 0 (or less): unguided
    grad_clip: float  # RMS limit per plan element, in normalised units
    on: str = "noisy"  # "noisy" | "x0"

    def clip(self, grad: Tensor) -> Tensor:
        grad = grad.clone()
        grad[:, 0] = 0  # the current state is inpainted, never moved
        # Clip the root-mean-square per plan element, so the limit means the same for any horizon.
        rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp(min=1e-12)
        return grad * (self.grad_clip / rms).clamp(max=1.0)[:, None, None]


class Unguided:
    scale = 0.0

    def __call__(self, x: Tensor, step: int, denoise: Denoise) -> tuple[Tensor, None]:
        return denoise(x, step), None


class NoisyGuide:
    """Autograd of the objective with the critic on x_t at the step's noise level (the reference)."""

    def __init__(self, guidance: RiskGuidance, context: Tensor, noise_levels: Tensor):
        self.guidance, self.scale, self.context, self.noise_levels = guidance, guidance.scale, context, noise_levels

    def __call__(self, x: Tensor, step: int, denoise: Denoise) -> tuple[Tensor, Tensor]:
        x0 = denoise(x, step)
        objective = self.guidance.objective
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            # Costmap on the denoiser's clean estimate, moved along with x_t (no U-Net backward).
            x0_moving = x0.detach() + (xg - xg.detach())
            quantiles = objective.risk.quantiles(xg, self.context, self.noise_levels[step].expand(x.shape[0]))
            (grad,) = torch.autograd.grad(objective.score(quantiles, x0_moving).sum(), xg)
        return x0, self.guidance.clip(grad)


class AnalyticNoisyGuide:
    """NoisyGuide's gradient for the MLP QuantileCritic without a costmap term, written out by hand
    (critic_gradient.py): no autograd graph per step, what does not depend on x_t computed once."""

    def __init__(self, guidance: RiskGuidance, context: Tensor, noise_levels: Tensor):
        risk = guidance.objective.risk
        self.guidance, self.scale = guidance, guidance.scale
        self.tail_gradient = critic_gradient.CriticTailGradient(risk.critic, context, noise_levels, risk.alpha, risk.risk_mode)

    @staticmethod
    def applies(guidance: RiskGuidance) -> bool:
        return (guidance.on == "noisy" and guidance.objective.costmap is None
                and critic_gradient.supports(guidance.objective.risk.critic))

    def __call__(self, x: Tensor, step: int, denoise: Denoise) -> tuple[Tensor, Tensor]:
        return denoise(x, step), self.guidance.clip(self.tail_gradient(x, step))


class X0Guide:
    """Autograd of the objective on the denoiser's clean estimate, through the denoiser."""

    def __init__(self, guidance: RiskGuidance, context: Tensor):
        self.guidance, self.scale, self.context = guidance, guidance.scale, context

    def __call__(self, x: Tensor, step: int, denoise: Denoise) -> tuple[Tensor, Tensor]:
        objective = self.guidance.objective
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = denoise(xg, step)
            quantiles = objective.risk.quantiles(x0, self.context, x0.new_zeros(x.shape[0]))
            (grad,) = torch.autograd.grad(objective.score(quantiles, x0).sum(), xg)
        return x0.detach(), self.guidance.clip(grad)


def choose_guide(guidance: RiskGuidance | None, context: Tensor, noise_levels: Tensor, hand_written_gradient: bool):
    """The guide step for these settings; noise_levels [S] one per sampler step. hand_written_gradient
    takes AnalyticNoisyGuide where it applies (the fast path), else autograd (the reference)."""
    if guidance is None or guidance.scale <= 0:
        return Unguided()
    if guidance.on == "x0":
        return X0Guide(guidance, context)
    if hand_written_gradient and AnalyticNoisyGuide.applies(guidance):
        return AnalyticNoisyGuide(guidance, context, noise_levels)
    return NoisyGuide(guidance, context, noise_levels)
