"""The learned parts, built from a ModelConfig: denoiser, critic, inverse dynamics and the map encoder.

A map-conditioned model (model.map_patch_cells > 0) conditions denoiser and critic on [relative goal,
map embedding] and its critic reads the patch along each plan; a per-map model on [relative goal,
absolute start position], with an empty map encoder slot (no weights).
"""
from __future__ import annotations

from torch import nn

from ..config import ACTION_DIM, ModelConfig
from .critic import MapQuantileCritic, QuantileCritic
from .inverse_dynamics import InverseDynamics
from .map_encoder import MapEncoder, NoMapEncoder
from .per_step_critic import PerStepMapCritic
from .temporal_unet import TemporalUnet

NETWORK_NAMES = ("denoiser", "critic", "inverse_dynamics", "map_encoder")


def build_networks(cfg: ModelConfig) -> dict[str, nn.Module]:
    state, context = cfg.state_dim, cfg.context_dim
    if not cfg.map_conditioned:
        return {
            "denoiser": TemporalUnet(cfg.horizon, state, context, cfg.unet_dim, tuple(cfg.unet_dim_mults)),
            "critic": QuantileCritic(cfg.horizon, state, context, cfg.n_quantiles, cfg.critic_hidden,
                                     cfg.critic_tail_means),
            "inverse_dynamics": InverseDynamics(state, ACTION_DIM, cfg.idm_hidden),
            "map_encoder": NoMapEncoder(),
        }
    channels = cfg.map_channels
    if cfg.critic_kind == "per_step":
        read = None if cfg.critic_reads_map_embedding else cfg.goal_dim  # the context starts with the relative goal
        critic = PerStepMapCritic(cfg.horizon, state, context, channels, cfg.n_quantiles, cfg.critic_hidden,
                                  read_context=read, reads_continuation=cfg.critic_reads_continuation,
                                  tail_means=cfg.critic_tail_means)
    else:
        critic = MapQuantileCritic(cfg.horizon, state, context, channels, cfg.n_quantiles, cfg.critic_hidden,
                                   cfg.critic_tail_means)
    return {
        "denoiser": TemporalUnet(cfg.horizon, state, cfg.denoiser_context_dim, cfg.unet_dim, tuple(cfg.unet_dim_mults),
                                 map_channels=channels if cfg.denoiser_reads_map else 0),
        "critic": critic,
        "inverse_dynamics": InverseDynamics(state, ACTION_DIM, cfg.idm_hidden),
        "map_encoder": MapEncoder(channels, cfg.map_patch_cells, cfg.map_embedding),
    }
