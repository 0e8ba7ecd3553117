"""A cost grid in the ROS OccupancyGrid convention and a differentiable lookup into it.

The lookup is bilinear (`grid_sample`), so the planner can push plans down the cost
gradient. A raw occupancy grid is a step function with a gradient only at cell edges;
`Costmap.from_occupancy` therefore inflates obstacles into a smooth decaying cost
(like Nav2's inflation layer) so the push starts some distance before the wall.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Costmap:
    cost: Tensor  # [height, width] float in [0, 1]; row = y, column = x
    resolution: float  # metres per cell
    origin_x: float  # world coordinates of the lower-left corner of cell (0, 0)
    origin_y: float

    def __post_init__(self):
        self.cost = torch.as_tensor(self.cost, dtype=torch.float32)
        if self.cost.dim() != 2 or self.cost.numel() == 0:
            raise ValueError(f"Costmap.cost must be a non-empty [height, width] grid, got shape {tuple(self.cost.shape)}")
        if not torch.isfinite(self.cost).all():
            raise ValueError("Costmap.cost has non-finite values")
        if not self.resolution > 0:
            raise ValueError(f"Costmap.resolution must be > 0 m/cell, got {self.resolution}")

    @classmethod
    def from_occupancy(cls, data, resolution: float, origin_x: float, origin_y: float,
                       inflation_radius: float = 0.5, unknown_is_obstacle: bool = True) -> "Costmap":
        """ROS occupancy (int8: 0 free, 100 occupied, -1 unknown) to an inflated cost in [0, 1].

        Cost 1 on occupied cells, decaying linearly to 0 at `inflation_radius` metres from them.
        Unknown cells count as occupied unless `unknown_is_obstacle` is False (then as free):
        a robot should not plan through space nobody has seen.
        """
        occ = torch.as_tensor(np.asarray(data), dtype=torch.float32)
        if occ.dim() != 2:
            raise ValueError(f"occupancy data must be [height, width], got shape {tuple(occ.shape)}")
        occupied = ((occ >= 50) | ((occ < 0) & unknown_is_obstacle)).float()
        cells = max(int(round(inflation_radius / resolution)), 0)
        cost = occupied
        if cells > 0:
            # Distance (in cells, Chebyshev) to the nearest obstacle via repeated 3x3 max-pooling:
            # each dilation ring gets cost 1 - ring / (cells + 1).
            grown = occupied[None, None]
            cost = occupied.clone()
            for ring in range(1, cells + 1):
                grown = F.max_pool2d(grown, 3, stride=1, padding=1)
                cost = torch.maximum(cost, grown[0, 0] * (1 - ring / (cells + 1)))
        return cls(cost, float(resolution), float(origin_x), float(origin_y))

    @classmethod
    def from_grid(cls, grid, inflation_radius: float = 0.5, unknown_is_obstacle: bool = True) -> "Costmap":
        """From any object with `.data`, `.resolution`, `.origin_x`, `.origin_y` (risky_nav's OccupancyGrid)."""
        return cls.from_occupancy(grid.data, grid.resolution, grid.origin_x, grid.origin_y, inflation_radius,
                                  unknown_is_obstacle)

    def to(self, device) -> "Costmap":
        return Costmap(self.cost.to(device), self.resolution, self.origin_x, self.origin_y)

    def lookup(self, xy: Tensor) -> Tensor:
        """Bilinear cost at world positions xy [..., 2] -> [...]; outside the grid: the edge value."""
        height, width = self.cost.shape
        cost = self.cost.to(device=xy.device, dtype=xy.dtype)
        # grid_sample with align_corners=False maps -1/+1 to the outer edges of the border cells,
        # which is exactly the OccupancyGrid's extent [origin, origin + size * resolution].
        u = (xy[..., 0] - self.origin_x) / (width * self.resolution) * 2 - 1
        v = (xy[..., 1] - self.origin_y) / (height * self.resolution) * 2 - 1
        # grid_sample's CPU backward crashes the process (SIGSEGV) on a NaN coordinate, which a
        # diverged model produces. Beyond +-1 the border padding already gives the edge value
        # and zero gradient, so clamping there changes nothing for finite positions.
        u, v = (torch.nan_to_num(c, nan=1.5).clamp(-1.5, 1.5) for c in (u, v))
        grid = torch.stack([u, v], -1).reshape(1, -1, 1, 2)
        out = F.grid_sample(cost[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.reshape(xy.shape[:-1])
