"""The three learned parts, built from a ModelConfig: denoiser, critic, inverse dynamics."""
from __future__ import annotations

from torch import nn

from ..config import ACTION_DIM, CONTEXT_DIM, STATE_DIM, ModelConfig
from .critic import QuantileCritic
from .inverse_dynamics import InverseDynamics
from .temporal_unet import TemporalUnet

NETWORK_NAMES = ("denoiser", "critic", "inverse_dynamics")


def build_networks(cfg: ModelConfig) -> dict[str, nn.Module]:
    return {
        "denoiser": TemporalUnet(cfg.horizon, STATE_DIM, CONTEXT_DIM, cfg.unet_dim, tuple(cfg.unet_dim_mults)),
        "critic": QuantileCritic(cfg.horizon, STATE_DIM, CONTEXT_DIM, cfg.n_quantiles, cfg.critic_hidden),
        "inverse_dynamics": InverseDynamics(STATE_DIM, ACTION_DIM, cfg.idm_hidden),
    }
