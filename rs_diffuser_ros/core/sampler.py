"""Few-step DDIM sampling with inpainting of the current state and optional risk guidance.

Classifier guidance in DDIM form (Dhariwal & Nichol 2021): the predicted noise is shifted
by -sqrt(1 - alpha_bar_t) * scale * grad, which moves the mean by the noise variance times
the gradient, as in the method's x_{t-1} <- mu + scale * Sigma_t * g.
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
            grad, eps = guidance.x0_gradient(x, t, context, denoiser, sqrt_ab, sqrt_1mab)
        else:
            eps = denoiser(x, t, context)
            grad = guidance.noisy_gradient(x, context, eps, sqrt_ab, sqrt_1mab) if guided else None
        if grad is not None:
            eps = eps - sqrt_1mab * guidance.scale * grad
        # Clip the clean estimate to the data range (Diffuser's clip_denoised), keep the start exact,
        # and re-derive epsilon so the DDIM step stays consistent with the clipped estimate.
        x0 = inpaint(((x - sqrt_1mab * eps) / sqrt_ab).clamp(-1, 1), start)
        eps = (x - sqrt_ab * x0) / sqrt_1mab
        x = schedule.sqrt_ab_prev[i] * x0 + schedule.dir_coef[i] * eps
        if schedule.stochastic:
            x = x + schedule.sigma[i] * torch.randn(x.shape, device=x.device, generator=generator)
        x = inpaint(x, start)
        if on_step is not None:
            on_step(i, x)
    return x
