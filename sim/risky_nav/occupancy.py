"""Static occupancy grid of a layout, in the ROS nav_msgs/OccupancyGrid convention.

`data[row, col]` is 0 (free) or 100 (occupied); row = y, column = x; (origin_x, origin_y)
is the world position of the lower-left corner of cell (0, 0). A cell is occupied when its
centre lies inside a wall or obstacle (no inflation: the costmap user inflates).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risky_nav.layout import Box, Layout

FREE = 0
OCCUPIED = 100


@dataclass(frozen=True)
class OccupancyGrid:
    data: np.ndarray      # int8 [height, width]
    resolution: float     # metres per cell
    origin_x: float
    origin_y: float

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the cell holding world point (x, y); may lie outside the grid."""
        return (int(np.floor((y - self.origin_y) / self.resolution)),
                int(np.floor((x - self.origin_x) / self.resolution)))

    def cell_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """World x [width] and y [height] of the cell centres."""
        xs = self.origin_x + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.height) + 0.5) * self.resolution
        return xs, ys


def rasterize_boxes(boxes: tuple[Box, ...] | list[Box], width_m: float, height_m: float,
                    resolution: float) -> np.ndarray:
    """Boolean [rows, cols] mask of the cells whose centre lies in any of `boxes`."""
    cols, rows = int(round(width_m / resolution)), int(round(height_m / resolution))
    xs = (np.arange(cols) + 0.5) * resolution
    ys = (np.arange(rows) + 0.5) * resolution
    mask = np.zeros((rows, cols), dtype=bool)
    for b in boxes:
        in_x = (xs >= b.x_min) & (xs <= b.x_max)
        in_y = (ys >= b.y_min) & (ys <= b.y_max)
        mask |= in_y[:, None] & in_x[None, :]
    return mask


def occupancy_grid(layout: Layout, resolution: float = 0.05) -> OccupancyGrid:
    """The layout's walls and obstacles rasterised at `resolution` metres per cell."""
    if not 0 < resolution <= 0.1:
        raise ValueError(f"occupancy grid resolution must be in (0, 0.1] m, got {resolution}")
    mask = rasterize_boxes(layout.solid_boxes(), layout.width, layout.height, resolution)
    data = np.where(mask, OCCUPIED, FREE).astype(np.int8)
    return OccupancyGrid(data=data, resolution=resolution, origin_x=0.0, origin_y=0.0)
