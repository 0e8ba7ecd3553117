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

from . import critic_gradient
from .guidance import RiskGuidance
from ..schedule import DiffusionSchedule
from ..models.temporal_unet import TemporalUnet


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


# --- the fast path ---------------------------------------------------------------------------
# Same mathematics as ddim_sample (the reference, kept as the baseline it is tested against), with
# everything that does not depend on x hoisted out of the loop: the U-Net's step/context biases
# for all steps, the critic's context/noise-level response and the tail weights (critic_gradient);
# the noise is drawn before the call, so the loop has no RNG and can be captured in a CUDA graph.

def draw_noise(schedule: DiffusionSchedule, shape: tuple[int, int, int], device, generator=None) -> tuple[Tensor, Tensor | None]:
    """Initial noise [M, H, D] and, for eta > 0, per-step noise [S, M, H, D]: the same draws, in the
    same order, as ddim_sample makes, so a seed gives the same plan on both paths."""
    initial = torch.randn(shape, device=device, generator=generator)
    if not schedule.stochastic:
        return initial, None
    return initial, torch.stack([torch.randn(shape, device=device, generator=generator)
                                 for _ in range(schedule.n_sample_steps)])


@torch.no_grad()
def ddim_sample_fast(
    denoiser: nn.Module,
    schedule: DiffusionSchedule,
    start: Tensor,
    context: Tensor,
    initial_noise: Tensor,  # [M, H, D] from draw_noise
    step_noise: Tensor | None = None,  # [S, M, H, D] when the schedule is stochastic
    guidance: RiskGuidance | None = None,
) -> Tensor:
    m = start.shape[0]
    n_steps = schedule.n_sample_steps
    x = inpaint(initial_noise.clone(), start)
    guided = guidance is not None and guidance.scale > 0
    costmap_term = guided and guidance.costmap is not None and guidance.costmap_weight > 0
    analytic = (guided and guidance.on == "noisy" and not costmap_term and critic_gradient.supports(guidance.critic))
    if analytic:
        tail_gradient = critic_gradient.CriticTailGradient(
            guidance.critic, context, schedule.sqrt_one_minus_ab, guidance.alpha, guidance.risk_mode)
    hoisted = isinstance(denoiser, TemporalUnet) and not (guided and guidance.on == "x0")
    if hoisted:
        # [S*M, cond] -> per block [S, M, c, 1]: one matmul per block for the whole loop.
        cond = (denoiser.time_mlp(schedule.timesteps)[:, None] + denoiser.context_mlp(context)[None]).flatten(0, 1)
        biases = [b.view(n_steps, m, -1, 1) for b in denoiser.block_biases(cond)]
    for i in range(n_steps):
        t = schedule.timesteps[i].expand(m)
        sqrt_ab, sqrt_1mab = schedule.sqrt_ab[i], schedule.sqrt_one_minus_ab[i]
        if guided and guidance.on == "x0":
            grad, x0 = guidance.x0_gradient(x, t, context, denoiser)
        else:
            x0 = denoiser.forward_biased(x, [b[i] for b in biases]) if hoisted else denoiser(x, t, context)
            if not guided:
                grad = None
            elif analytic:
                grad = guidance._clip(tail_gradient(x, i))
            else:
                grad = guidance.noisy_gradient(x, context, x0, sqrt_1mab)
        x0 = inpaint(x0.float().clamp(-1, 1), start)  # float(): under autocast the U-Net returns bf16/fp16
        eps = (x - sqrt_ab * x0) / sqrt_1mab
        x = schedule.sqrt_ab_prev[i] * x0 + schedule.dir_coef[i] * eps
        if grad is not None:
            x = x + guidance.scale * schedule.guide_var[i] * grad.float()
        if step_noise is not None:
            x = x + schedule.sigma[i] * step_noise[i]
        x = inpaint(x, start)
    return x
