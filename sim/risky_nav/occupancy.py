"""Grids of a layout in the ROS nav_msgs/OccupancyGrid convention: its obstacles and its risk.

`data[row, col]` holds 0..100; row = y, column = x; (origin_x, origin_y) is the world position
of the lower-left corner of cell (0, 0). Both grids of a layout at one resolution share that
geometry, and a cell belongs to a box when its centre lies inside it, as the env tests the
robot's centre.

- `occupancy_grid`: 0 free, 100 occupied (a wall or obstacle; no inflation: the costmap user inflates).
- `risk_grid`: the hazard level of the risky regions, 0 outside them (`hazard_level`).
- `severity_grid`: the severity level of the same regions, 0 outside them (`severity_level`): the size of one
  event, which the hazard level (its expected penalty per step) does not carry.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from risky_nav.layout import Box, Layout

FREE = 0
OCCUPIED = 100

# Hazard level 100 stands for this expected penalty per control step (reward units); lower levels
# scale linearly (level = 100 x p x C / HAZARD_FULL_SCALE). 1.0 covers the generated maps' regions
# (p x C up to 0.9, mapgen) without clipping and is 10x the shipped step cost.
HAZARD_FULL_SCALE = 1.0
# Severity level 100 stands for this penalty of one risk event (reward units); lower levels scale linearly
# (level = 100 x C / SEVERITY_FULL_SCALE, 0.25 units a level). 25 covers the generated maps' events (C up to 22).
SEVERITY_FULL_SCALE = 25.0


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
    _check_resolution(resolution)
    mask = rasterize_boxes(layout.solid_boxes(), layout.width, layout.height, resolution)
    data = np.where(mask, OCCUPIED, FREE).astype(np.int8)
    return OccupancyGrid(data=data, resolution=resolution, origin_x=0.0, origin_y=0.0)


def hazard_level(p: float, penalty: float) -> int:
    """0..100: a region's expected penalty per control step, p x C, on the linear HAZARD_FULL_SCALE scale.

    Rounded to the nearest level, at least 1 when p x C > 0 (a region with any risk never reads as
    none), clipped at 100; non-decreasing in p and in C. One number cannot carry p and C apart:
    a rare large penalty and a frequent small one with equal p x C get the same level.
    """
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"risky region p must be a probability in [0, 1], got {p}")
    if not (math.isfinite(penalty) and penalty >= 0.0):
        raise ValueError(f"risky region penalty must be finite and >= 0, got {penalty}")
    expected = p * penalty
    if expected <= 0.0:
        return FREE
    return int(min(OCCUPIED, max(1, math.floor(100.0 * expected / HAZARD_FULL_SCALE + 0.5))))


def severity_level(p: float, penalty: float) -> int:
    """0..100: the penalty C of one event of a region, on the linear SEVERITY_FULL_SCALE scale.

    0 where the region carries no risk (p x C = 0, as hazard_level), else at least 1, clipped at 100. With the
    hazard level it gives p and C apart: a crossing's tail (CVaR) is set by C, its mean by p x C.
    """
    if hazard_level(p, penalty) == FREE:  # checks p and C too
        return FREE
    return int(min(OCCUPIED, max(1, math.floor(100.0 * penalty / SEVERITY_FULL_SCALE + 0.5))))


def risk_grid(layout: Layout, resolution: float = 0.05) -> OccupancyGrid:
    """The hazard level (`hazard_level`) of every cell at `resolution`, in the geometry of `occupancy_grid`:
    0 outside every risky region, the highest level where regions overlap (as Nav2's costmap layers combine)."""
    return _region_grid(layout, resolution, hazard_level)


def severity_grid(layout: Layout, resolution: float = 0.05) -> OccupancyGrid:
    """The severity level (`severity_level`) of every cell, as `risk_grid` lays out the hazard level: the highest
    where regions overlap (the worst event a cell can meet)."""
    return _region_grid(layout, resolution, severity_level)


def _region_grid(layout: Layout, resolution: float, level) -> OccupancyGrid:
    _check_resolution(resolution)
    data = np.zeros(rasterize_boxes((), layout.width, layout.height, resolution).shape, dtype=np.int8)
    for region in layout.risky_regions:
        inside = rasterize_boxes((region.box,), layout.width, layout.height, resolution)
        data[inside] = np.maximum(data[inside], level(region.p, region.penalty))
    return OccupancyGrid(data=data, resolution=resolution, origin_x=0.0, origin_y=0.0)


def _check_resolution(resolution: float) -> None:
    if not 0 < resolution <= 0.1:
        raise ValueError(f"occupancy grid resolution must be in (0, 0.1] m, got {resolution}")
