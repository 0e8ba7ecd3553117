"""How far a point lies from a blocked cell: the one rule the collision check (control/collision.py) and the model's
passable cells (core/map_input.py) both measure by, so a cell the model may route through is one the check admits.

A blocked cell counts as the disc inscribed in it: Euclidean distance to its centre less half a cell. Beyond the
map's edge counts as blocked for both (each pads its grid with blocked cells).
"""
from __future__ import annotations


def distance_to_blocked_cell(dx, dy, resolution: float):
    """Distance (m) from a point to a blocked cell whose centre lies (dx, dy) cells away (floats, arrays or tensors);
    below 0 within the cell's inscribed disc."""
    return (dx * dx + dy * dy) ** 0.5 * resolution - 0.5 * resolution
