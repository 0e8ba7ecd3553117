"""Few-step DDIM sampling with inpainting of the current state and optional risk guidance: one loop,
whose per-step pieces are swappable steps (in the spirit of Diffuser's swappable step functions).

The denoiser predicts the clean window x0 (Diffuser's choice for navigation); epsilon is
derived from it. Guidance as in the method (and Diffuser): x_{t-1} <- mu + scale * Sigma * g,
with Sigma the DDPM posterior variance of the jump t -> t_prev (schedule.guide_var). It is
bounded (<= 1) and shrinks to 0 at the last step, unlike DDIM's epsilon-shift form, whose
x0 shift (1 - a_t) / sqrt(a_t) explodes at the first, noisiest step.
The loop is device-only: no .item(), no host sync, coefficients precomputed in the schedule.

The pieces (SamplingSteps): `denoise` (denoise.py), `guide` (guidance.py), `noise` (noise.py).
Two standard choices, same mathematics and the same random draws:
  reference_steps  the denoiser's plain forward, autograd guidance, noise drawn as the loop goes;
  fast_steps       everything that does not depend on x_t hoisted out of the loop: the U-Net's
                   step/context biases for all steps, the critic's gradient written out by hand
                   where it applies (critic_gradient.py); the noise drawn before the call, so the
                   loop has no RNG and can be captured in a CUDA graph (cuda_graph.py).
The fast path is tested against the reference (test/test_core_fastpath.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..conditioning import MapView
from ..models.temporal_unet import TemporalUnet
from ..schedule import DiffusionSchedule
from .denoise import Denoise, HoistedUnetDenoise
from .guidance import AnalyticNoisyGuide, NoisyGuide, RiskGuidance, Unguided, X0Guide, choose_guide
from .noise import DrawnNoise, PreDrawnNoise


@dataclass
class SamplingSteps:
    denoise: Callable[[Tensor, int], Tensor]  # (x_t, step) -> x0_hat
    guide: Unguided | NoisyGuide | AnalyticNoisyGuide | X0Guide  # (x_t, step, denoise) -> (x0_hat, gradient | None)
    noise: DrawnNoise | PreDrawnNoise


@dataclass
class Inpainting:
    """The states every window is held to (Diffuser's conditioning by inpainting): its first state, the current one;
    and, for some rows, the positions of later states (a route follower's, core/route_candidates.py)."""

    start: Tensor  # [M, D] normalised current states
    waypoints: Tensor | None = None  # [M, H, 2] normalised plan-frame positions, read where `at` holds
    at: Tensor | None = None  # [M, H] bool: the states held to a waypoint (a row with none: all False)

    def __call__(self, x: Tensor) -> Tensor:
        x[:, 0] = self.start
        if self.waypoints is not None:
            x[..., :2] = torch.where(self.at[..., None], self.waypoints.to(x.dtype), x[..., :2])
        return x


@torch.no_grad()
def ddim_loop(schedule: DiffusionSchedule, start: Tensor | Inpainting, steps: SamplingSteps,
              on_step: Callable[[int, Tensor], None] | None = None) -> Tensor:
    """start [M, D] normalised current states (or an Inpainting: them and waypoints) -> sampled windows [M, H, D];
    on_step sees x after every step."""
    inpaint = start if isinstance(start, Inpainting) else Inpainting(start)
    x = inpaint(steps.noise.initial())
    for i in range(schedule.n_sample_steps):
        x0, grad = steps.guide(x, i, steps.denoise)
        # Clip the clean estimate to the data range (Diffuser's clip_denoised), keep the start (and waypoints) exact,
        # and derive epsilon from it so the DDIM step is consistent with the clipped estimate.
        x0 = inpaint(x0.float().clamp(-1, 1))  # float(): under autocast the U-Net returns bf16/fp16
        eps = (x - schedule.sqrt_ab[i] * x0) / schedule.sqrt_one_minus_ab[i]
        x = schedule.sqrt_ab_prev[i] * x0 + schedule.dir_coef[i] * eps
        if grad is not None:
            x = x + steps.guide.scale * schedule.guide_var[i] * grad.float()
        noise = steps.noise.step(i)
        if noise is not None:
            x = x + schedule.sigma[i] * noise
        x = inpaint(x)
        if on_step is not None:
            on_step(i, x)
    return x


def reference_steps(denoiser: nn.Module, schedule: DiffusionSchedule, context: Tensor, guidance: RiskGuidance | None,
                    shape: tuple[int, int, int], generator: torch.Generator | None = None,
                    denoiser_context: Tensor | None = None, denoiser_map: MapView | None = None) -> SamplingSteps:
    """context [M, C] normalised conditioning (the critic's, and the denoiser's unless denoiser_context is given: a
    model with a route label); shape (M, H, D) of the windows; denoiser_map: the patches a denoiser that reads the
    map along its plan reads (model.denoiser_reads_map), else None."""
    guide = choose_guide(guidance, context, schedule.sqrt_one_minus_ab, hand_written_gradient=False)
    denoise = Denoise(denoiser, schedule, context if denoiser_context is None else denoiser_context, denoiser_map)
    return SamplingSteps(denoise, guide, DrawnNoise(schedule, shape, context.device, generator))


@torch.no_grad()
def fast_steps(denoiser: nn.Module, schedule: DiffusionSchedule, context: Tensor, guidance: RiskGuidance | None,
               initial_noise: Tensor, step_noise: Tensor | None = None, denoiser_context: Tensor | None = None,
               denoiser_map: MapView | None = None) -> SamplingSteps:
    """initial_noise [M, H, D] and step_noise [S, M, H, D] (eta > 0) from noise.draw_noise. Build it under
    the autocast the loop runs in: the hoisted pieces are computed here."""
    guide = choose_guide(guidance, context, schedule.sqrt_one_minus_ab, hand_written_gradient=True)
    # x0 guidance backprops through the U-Net: it keeps the plain forward.
    hoist = isinstance(denoiser, TemporalUnet) and not isinstance(guide, X0Guide)
    own = context if denoiser_context is None else denoiser_context
    denoise = (HoistedUnetDenoise(denoiser, schedule, own, denoiser_map) if hoist
               else Denoise(denoiser, schedule, own, denoiser_map))
    return SamplingSteps(denoise, guide, PreDrawnNoise(initial_noise, step_noise))


def ddim_sample(denoiser: nn.Module, schedule: DiffusionSchedule, start: Tensor, context: Tensor, horizon: int,
                guidance: RiskGuidance | None = None, generator: torch.Generator | None = None,
                on_step: Callable[[int, Tensor], None] | None = None) -> Tensor:
    """The reference sampler in one call: start [M, D], context [M, C] -> windows [M, horizon, D]."""
    steps = reference_steps(denoiser, schedule, context, guidance, (start.shape[0], horizon, start.shape[1]), generator)
    return ddim_loop(schedule, start, steps, on_step)
