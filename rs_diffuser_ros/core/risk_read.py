"""The critic's read of risk along a plan at the map's own resolution, not only the patch's.

The patch (map_input.cut_patches) has 0.2 m cells, each a bilinear read of the 0.1 m map layers, and the critic
reads it bilinearly again at every plan state: a state a few centimetres inside a region's corner reads a fraction
of the region's risk (0.2 - 0.4), and the critic did not score such a graze as the risk it is. Plans that cut a
corner by 1 - 4 cm were picked four ticks running and the robot's centre ended a step inside (fresh2 gen2100014,
seed 1284: docs/method_choices.md, "The critic's risk read at the map's resolution"). So the risk and hazard
channels the critic reads are the larger of the patch's read and a read of the map layers themselves, max-pooled
by one cell first: 1 anywhere inside a risky cell and up to 5 cm beyond it (a bilinear read of the bare layer gives
0.5 at its edge and 0.25 at its corner), falling to 0 over the next 10 cm, so guidance's gradient leads out of it.
It changes nothing away from risk (there the patch's blur is the larger) and what a network is trained on (the
patch alone); the denoiser keeps reading the patch as it was trained.
The dilation is a pass over the whole map (27 ms on 2 CPU cores for a 100 x 100 m map): the planner takes it from the
map's cache (PlanningMap.derived), once per map, not once per replan.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .map_input import LAYER_NAMES, PATCH_CHANNELS, grid_coordinates

# The channels read finely: the same name in the map layers and in the patch (risk and hazard).
_FINE = ("risk", "hazard")
_LAYER = [LAYER_NAMES.index(name) for name in _FINE]
_PATCH = [PATCH_CHANNELS.index(name) for name in _FINE]


@dataclass
class MapRiskRead:
    """One map's risk and hazard layers, dilated by a cell, and the world position each patch of a batch is
    centred on (plan positions are metres from it)."""

    layers: Tensor  # [1, 2, h, w]: risk and hazard, max-pooled over each cell's 3 x 3 neighbourhood
    origin: Tensor  # [2] world position of the lower-left corner of cell (0, 0)
    resolution: float  # metres per cell
    centres: Tensor  # [B, 2] world position of patch b (rows b*K .. b*K+K-1 of a plan batch)

    @staticmethod
    def dilate(map_layers: Tensor) -> Tensor:
        """A map's layers [1, len(LAYER_NAMES), h, w] (MapLayers.layers, one map) -> `layers`: risk and hazard
        max-pooled by a cell."""
        return F.max_pool2d(map_layers[:1, _LAYER], 3, stride=1, padding=1)

    def sharpen(self, read: Tensor, xy: Tensor) -> Tensor:
        """read [B*K, H, C] (the patch's channels at plan positions xy [B*K, H, 2], metres from each patch's centre)
        -> the same with risk and hazard the larger of the patch's read and the map's own there."""
        k = xy.shape[0] // len(self.centres)
        world = xy + self.centres.repeat_interleave(k, 0)[:, None, :].to(xy.dtype)
        grid = grid_coordinates(world, self.origin, self.resolution, *self.layers.shape[-2:])
        # As sample_along: no NaN into grid_sample's CPU backward; beyond +-1 (off the map) zeros padding reads no risk.
        grid = torch.nan_to_num(grid, nan=1.5).clamp(-1.5, 1.5)
        fine = F.grid_sample(self.layers, grid.reshape(1, -1, 1, 2).to(self.layers.dtype), mode="bilinear",
                             padding_mode="zeros", align_corners=False)  # [1, 2, B*K*H, 1]
        fine = fine[0, :, :, 0].T.reshape(*xy.shape[:2], len(_FINE)).to(read.dtype)
        columns = list(read.unbind(-1))  # every patch holds risk and hazard (map_input.BASE_CHANNELS)
        for j, channel in enumerate(_PATCH):
            columns[channel] = torch.maximum(columns[channel], fine[..., j])
        return torch.stack(columns, -1)
