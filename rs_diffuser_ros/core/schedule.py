"""DDPM noise schedule and the precomputed coefficients of a few-step DDIM sampler.

Everything the sampling loop needs is a tensor computed once here, so the loop does no
Python-side maths per step and never syncs the device.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def cosine_betas(n_steps: int, s: float = 0.008) -> Tensor:
    """Nichol & Dhariwal's cosine schedule (as Diffuser uses)."""
    t = torch.linspace(0, n_steps, n_steps + 1, dtype=torch.float64) / n_steps
    alphas_cumprod = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(0, 0.999)


class DiffusionSchedule:
    def __init__(self, n_train_steps: int, n_sample_steps: int, eta: float = 0.0, device="cpu"):
        if not 1 <= n_sample_steps <= n_train_steps:
            raise ValueError(f"DDIM steps must be in [1, {n_train_steps}], got {n_sample_steps}")
        self.n_train_steps = n_train_steps
        self.n_sample_steps = n_sample_steps
        alphas_cumprod = torch.cumprod(1 - cosine_betas(n_train_steps), 0)
        # Training (q(x_t | x_0)) coefficients, indexed by t in [0, n_train_steps).
        self.sqrt_alphas_cumprod = alphas_cumprod.sqrt().float().to(device)
        self.sqrt_one_minus_alphas_cumprod = (1 - alphas_cumprod).sqrt().float().to(device)

        # DDIM: evenly spaced timesteps from the noisiest to t=0, and for each its predecessor.
        ts = torch.linspace(n_train_steps - 1, 0, n_sample_steps).round().long()
        ab = alphas_cumprod[ts]
        ab_prev = torch.cat([alphas_cumprod[ts[1:]], torch.ones(1, dtype=torch.float64)])
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
        self.timesteps = ts.to(device)  # [S]
        self.sqrt_ab = ab.sqrt().float().to(device)
        self.sqrt_one_minus_ab = (1 - ab).sqrt().float().to(device)  # also the critic's noise level
        self.sqrt_ab_prev = ab_prev.sqrt().float().to(device)
        self.dir_coef = (1 - ab_prev - sigma**2).clamp(min=0).sqrt().float().to(device)
        self.sigma = sigma.float().to(device)
        # DDPM posterior variance of the jump t -> t_prev: the Sigma of the guided mean shift.
        self.guide_var = ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).float().to(device)
        self.stochastic = eta > 0

    def noise_level(self, t: Tensor) -> Tensor:
        """sqrt(1 - alpha_bar_t): the std of the noise in x_t; 0 means a clean plan."""
        return self.sqrt_one_minus_alphas_cumprod[t]

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return self.sqrt_alphas_cumprod[t, None, None] * x0 + self.sqrt_one_minus_alphas_cumprod[t, None, None] * noise
