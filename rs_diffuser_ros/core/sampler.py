"""Few-step DDIM sampling with inpainting of the current state and optional risk guidance.

The denoiser predicts the clean window x0 (Diffuser's choice for navigation); epsilon is
derived from it. Guidance as in the method (and Diffuser): x_{t-1} <- mu + scale * Sigma * g,
with Sigma the DDPM posterior variance of the jump t -> t_prev (schedule.guide_var). It is
bounded (<= 1) and shrinks to 0 at the last step, unlike DDIM's epsilon-shift form, whose
x0 shift (1 - a_t) / sqrt(a_t) explodes at the first, noisiest step.
The loop is device-only: no .item(), no host sync, coefficients precomputed in the schedule.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .guidance import RiskGuidance
from .schedule import DiffusionSchedule


def inpaint(x: Tensor, start: Tensor) -> Tensor:
    x[:, 0] = start
    return x


@torch.no_grad()
def ddim_sample(
    denoiser: nn.Module,
    schedule: DiffusionSchedule,
    start: Tensor,  # [M, D] normalised current states
    context: Tensor,  # [M, C] normalised conditioning (Normalizers.context)
    horizon: int,
    guidance: RiskGuidance | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,  # sees x after every step (tests, plots)
) -> Tensor:
    m, d = start.shape
    x = inpaint(torch.randn(m, horizon, d, device=start.device, generator=generator), start)
    guided = guidance is not None and guidance.scale > 0
    for i in range(schedule.n_sample_steps):
        t = schedule.timesteps[i].expand(m)
        sqrt_ab, sqrt_1mab = schedule.sqrt_ab[i], schedule.sqrt_one_minus_ab[i]
        if guided and guidance.on == "x0":
            grad, x0 = guidance.x0_gradient(x, t, context, denoiser)
        else:
            x0 = denoiser(x, t, context)
            grad = guidance.noisy_gradient(x, context, x0, sqrt_1mab) if guided else None
        # Clip the clean estimate to the data range (Diffuser's clip_denoised), keep the start exact,
        # and derive epsilon from it so the DDIM step is consistent with the clipped estimate.
        x0 = inpaint(x0.clamp(-1, 1), start)
        eps = (x - sqrt_ab * x0) / sqrt_1mab
        x = schedule.sqrt_ab_prev[i] * x0 + schedule.dir_coef[i] * eps
        if grad is not None:
            x = x + guidance.scale * schedule.guide_var[i] * grad
        if schedule.stochastic:
            x = x + schedule.sigma[i] * torch.randn(x.shape, device=x.device, generator=generator)
        x = inpaint(x, start)
        if on_step is not None:
            on_step(i, x)
    return x
