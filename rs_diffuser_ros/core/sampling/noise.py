"""Noise sources of the DDIM loop: the initial x_T and, when eta > 0, the noise added at each step.

Both give the same draws in the same order from a generator, so a seed gives the same plan
whichever the loop uses.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..schedule import DiffusionSchedule


class DrawnNoise:
    """Drawn from the generator as the loop goes (the reference)."""

    def __init__(self, schedule: DiffusionSchedule, shape: tuple[int, int, int], device, generator=None):
        self.stochastic, self.shape, self.device, self.generator = schedule.stochastic, shape, device, generator

    def initial(self) -> Tensor:
        return torch.randn(self.shape, device=self.device, generator=self.generator)

    def step(self, step: int) -> Tensor | None:
        if not self.stochastic:
            return None
        return torch.randn(self.shape, device=self.device, generator=self.generator)


class PreDrawnNoise:
    """Drawn before the loop (draw_noise), so the loop has no RNG and can be captured in a CUDA graph."""

    def __init__(self, initial: Tensor, steps: Tensor | None = None):
        self._initial, self._steps = initial, steps

    def initial(self) -> Tensor:
        return self._initial.clone()  # the loop writes into x; the caller's buffer stays as it was

    def step(self, step: int) -> Tensor | None:
        return None if self._steps is None else self._steps[step]


def draw_noise(schedule: DiffusionSchedule, shape: tuple[int, int, int], device, generator=None) -> tuple[Tensor, Tensor | None]:
    """Initial noise [M, H, D] and, for eta > 0, per-step noise [S, M, H, D]: DrawnNoise's draws, in its order."""
    drawn = DrawnNoise(schedule, shape, device, generator)
    initial = drawn.initial()
    if not schedule.stochastic:
        return initial, None
    return initial, torch.stack([drawn.step(i) for i in range(schedule.n_sample_steps)])
