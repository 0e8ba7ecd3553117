"""The maps of a map-conditioned training run: every map's layers on the training device, one goal
distance field per episode (computed once, before the first step), and the patches of a batch.

A batch gathers each window's map and field and cuts the patch around the window's first state on
the device: no patch is stored, so 500+ maps cost their layers (a few MB each) plus one field per episode.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import ModelConfig
from ..map_input import ROUTE_CHANNELS, ROUTE_RISK_CHANNELS, MapLayers


class TrainingMaps:
    def __init__(self, layers: MapLayers, episode_map: Tensor, episode_goal: Tensor, cells: int, extent_m: float,
                 safe_distance: bool = False, channels: int | None = None):
        """channels: the model's map_channels (None: what the plain and safe distance give, seven channels, or four
        without the safe distance); only those are cut per batch, and only the goal distance fields they read are
        computed."""
        self.layers, self.cells, self.extent_m, self.channels = layers, cells, extent_m, channels
        self.episode_map = episode_map.to(layers.layers.device)
        route_risk = channels is not None and channels > ROUTE_CHANNELS
        # Half precision: a field's values are metres up to ~40 (0.02 m steps there) or UNREACHABLE.
        self.distance = layers.goal_distance(episode_goal.to(layers.layers.device), self.episode_map,
                                             safe=safe_distance, route_risk=route_risk,
                                             severity=route_risk and channels > ROUTE_RISK_CHANNELS).half()

    @classmethod
    def from_grids(cls, grids, episode_map: Tensor, episode_goal: Tensor, model: ModelConfig,
                   device="cpu") -> "TrainingMaps":
        """The training maps of `model` from each map's (occupancy grid, hazard grid[, severity grid]) (risky_nav's
        grids, in the order episode_map indexes them), built on `device`."""
        layers = MapLayers.stack([MapLayers.from_grids(occ.data, occ.resolution, occ.origin_x, occ.origin_y, hazard.data,
                                                       device=device, passable_clearance_m=model.map_passable_clearance_m,
                                                       severity=severity[0].data if severity else None)
                                  for occ, hazard, *severity in grids])
        return cls(layers, episode_map, episode_goal, model.map_patch_cells, model.map_patch_m, model.map_safe_distance,
                   model.map_channels)

    def patches(self, centres: Tensor, episode: Tensor) -> Tensor:
        """Patches [B, channels, P, P] (PATCH_CHANNELS) around centres [B, 2] of windows from episodes [B]."""
        return self.layers.patches(centres, self.distance[episode], self.cells, self.extent_m,
                                   index=self.episode_map[episode], channels=self.channels)
