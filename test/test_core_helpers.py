"""Shared helpers for the core tests (no tests here): synthetic unicycle episodes and tiny configs.

The episodes follow the dataset contract (observations [T+1, 8], actions [T, 2], rewards [T], ...):
a unicycle drives with a noisy proportional controller from a random start to a goal; crossing
the band |y| < 0.5 costs, with probability 0.3 per step, a penalty of 5.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rs_diffuser_ros.core.config import CoreConfig, ModelConfig, PlannerConfig, TrainingConfig


@pytest.fixture(autouse=True)
def single_thread():
    """Core tests run torch on one thread: on a small shared machine, two threads' spin-waits
    made a training test 10x slower. Imported into each core test module; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_episodes(n: int = 8, seed: int = 0, max_steps: int = 60, dt: float = 0.1) -> list[dict]:
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n):
        x, y, yaw = rng.uniform(-3, -2), rng.uniform(-2, 2), rng.uniform(-0.5, 0.5)
        goal = np.array([2.5, rng.uniform(-1, 1)])
        v = w = 0.0
        obs, acts, rews, terms, truncs = [], [], [], [], []
        for t in range(max_steps):
            obs.append([x, y, np.sin(yaw), np.cos(yaw), v, w, *goal])
            dx, dy = goal[0] - x, goal[1] - y
            heading_err = np.arctan2(np.sin(np.arctan2(dy, dx) - yaw), np.cos(np.arctan2(dy, dx) - yaw))
            v = float(np.clip(0.8 + rng.normal(0, 0.1), 0, 1))
            w = float(np.clip(2.0 * heading_err + rng.normal(0, 0.2), -2, 2))
            x, y, yaw = x + v * np.cos(yaw) * dt, y + v * np.sin(yaw) * dt, yaw + w * dt
            reached = np.hypot(goal[0] - x, goal[1] - y) < 0.3
            reward = -0.1 - (5.0 if abs(y) < 0.5 and rng.random() < 0.3 else 0.0) + (10.0 if reached else 0.0)
            acts.append([v, w])
            rews.append(reward)
            terms.append(bool(reached))
            truncs.append(not reached and t == max_steps - 1)
            if reached:
                break
        obs.append([x, y, np.sin(yaw), np.cos(yaw), v, w, *goal])
        t_len = len(rews)
        episodes.append({
            "observations": np.asarray(obs, np.float32), "actions": np.asarray(acts, np.float32),
            "rewards": np.asarray(rews, np.float64), "terminations": np.asarray(terms),
            "truncations": np.asarray(truncs), "risk_events": np.zeros(t_len, bool), "collisions": np.zeros(t_len, bool),
        })
    return episodes


def tiny_config(**training) -> CoreConfig:
    """Networks small enough for CPU tests in seconds."""
    return CoreConfig(
        model=ModelConfig(horizon=8, unet_dim=8, unet_dim_mults=(1, 2), diffusion_steps=20, n_quantiles=8,
                          critic_hidden=32, idm_hidden=32),
        planner=PlannerConfig(candidates=4, ddim_steps=4),
        training=TrainingConfig(**{"steps": 20, "batch_size": 16, "log_every": 5, "checkpoint_every": 10,
                                   "ema_start": 5, **training}),
    ).validate()


# --- analytic stand-ins for the learned networks, for testing guidance and selection ------------
from torch import nn  # noqa: E402

from rs_diffuser_ros.core.schedule import DiffusionSchedule  # noqa: E402


class GaussianDenoiser(nn.Module):
    """The exact x0-predictor for data x0 ~ N(0, I): then x_t ~ N(0, I) and E[x0 | x_t] = sqrt(a_t) x_t."""

    def __init__(self, diffusion_steps: int):
        super().__init__()
        self.register_buffer("sqrt_ab", DiffusionSchedule(diffusion_steps, 1).sqrt_alphas_cumprod)

    def forward(self, x, t, context):
        return self.sqrt_ab[t][:, None, None] * x


class RiskyBandCritic(nn.Module):
    """Return distribution of a plan from its mean normalised y (m): mean 0.5 m, spread 2 sigmoid(3 m).

    Going up (+y) raises the mean but the spread faster: a short cut through a risky region.
    Neutral guidance should go up, averse (small alpha) down.
    """

    def __init__(self, n_quantiles: int):
        super().__init__()
        levels = (torch.arange(n_quantiles) + 0.5) / n_quantiles
        self.register_buffer("z", torch.distributions.Normal(0, 1).icdf(levels))

    def forward(self, window, context, noise_level):
        m = window[:, 1:, 1].mean(1, keepdim=True)
        return 0.5 * m + 2 * torch.sigmoid(3 * m) * self.z[None]
