"""Denoise steps of the DDIM loop: (x_t, step) -> the denoiser's clean estimate x0_hat.

A denoiser that reads the map along its plan (model.denoiser_reads_map) is handed the patch channels at x_t's
positions at every step (`map_view`): the read is a lookup into the patches encoded once per replan.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..conditioning import MapView
from ..models.temporal_unet import TemporalUnet
from ..schedule import DiffusionSchedule


class Denoise:
    """The denoiser's own forward at each step (the reference; any denoiser module)."""

    def __init__(self, denoiser: nn.Module, schedule: DiffusionSchedule, context: Tensor, map_view: MapView | None = None):
        self.denoiser, self.timesteps, self.context, self.map_view = denoiser, schedule.timesteps, context, map_view

    def __call__(self, x: Tensor, step: int) -> Tensor:
        t = self.timesteps[step].expand(x.shape[0])
        if self.map_view is None:
            return self.denoiser(x, t, self.context)
        return self.denoiser(x, t, self.context, self.map_view.along(x))


class HoistedUnetDenoise:
    """The same estimate from a TemporalUnet with its step and context conditioning (every block's
    bias) computed for all steps before the loop: one matmul per block instead of one per step."""

    def __init__(self, unet: TemporalUnet, schedule: DiffusionSchedule, context: Tensor, map_view: MapView | None = None):
        m, n_steps = context.shape[0], schedule.n_sample_steps
        # [S*M, cond] -> per block [S, M, c, 1].
        cond = (unet.time_mlp(schedule.timesteps)[:, None] + unet.context_mlp(context)[None]).flatten(0, 1)
        self.unet, self.biases = unet, [b.view(n_steps, m, -1, 1) for b in unet.block_biases(cond)]
        self.map_view = map_view

    def __call__(self, x: Tensor, step: int) -> Tensor:
        along = None if self.map_view is None else self.map_view.along(x)
        return self.unet.forward_biased(x, [b[step] for b in self.biases], along)
