"""Where the offline-RL trainers' random numbers come from.

On the CPU: the trainer's own seeded CPU generator, as before. On a GPU the trainer passes no generator
and the draws come from the device's RNG (seeded by torch.manual_seed): nothing is drawn on the host and
copied, so an update never waits for the host and can be replayed as one CUDA graph (cuda_graph_step.py).
"""
from __future__ import annotations

import torch
from torch import Tensor


def _where(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return device if generator is None else generator.device


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=_where(generator, device)).to(device)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.randn(shape, generator=generator, device=_where(generator, device)).to(device)


def integers(high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.randint(0, high, shape, generator=generator, device=_where(generator, device)).to(device)


def trainer_generator(seed: int, device: torch.device) -> torch.Generator | None:
    """The CPU trainer's generator; None on a GPU (the device RNG, seeded by the trainer's torch.manual_seed)."""
    return torch.Generator(device="cpu").manual_seed(seed) if device.type == "cpu" else None
