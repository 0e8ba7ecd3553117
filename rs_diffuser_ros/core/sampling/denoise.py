"""Denoise steps of the DDIM loop: (x_t, step) -> the denoiser's clean estimate x0_hat."""
from __future__ import annotations

from torch import Tensor, nn

from ..models.temporal_unet import TemporalUnet
from ..schedule import DiffusionSchedule


class Denoise:
    """The denoiser's own forward at each step (the reference; any denoiser module)."""

    def __init__(self, denoiser: nn.Module, schedule: DiffusionSchedule, context: Tensor):
        self.denoiser, self.timesteps, self.context = denoiser, schedule.timesteps, context

    def __call__(self, x: Tensor, step: int) -> Tensor:
        return self.denoiser(x, self.timesteps[step].expand(x.shape[0]), self.context)


class HoistedUnetDenoise:
    """The same estimate from a TemporalUnet with its step and context conditioning (every block's
    bias) computed for all steps before the loop: one matmul per block instead of one per step."""

    def __init__(self, unet: TemporalUnet, schedule: DiffusionSchedule, context: Tensor):
        m, n_steps = context.shape[0], schedule.n_sample_steps
        # [S*M, cond] -> per block [S, M, c, 1].
        cond = (unet.time_mlp(schedule.timesteps)[:, None] + unet.context_mlp(context)[None]).flatten(0, 1)
        self.unet, self.biases = unet, [b.view(n_steps, m, -1, 1) for b in unet.block_biases(cond)]

    def __call__(self, x: Tensor, step: int) -> Tensor:
        return self.unet.forward_biased(x, [b[step] for b in self.biases])
