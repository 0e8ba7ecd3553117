"""Gradients of the bilinear map lookups with respect to the looked-up positions, for the hand-written guidance:
the costmap term's (objective.CostmapTerm) and the map critic's patch channels along a plan (map_input).

Both lookups are grid_sample (bilinear, border padding, align_corners=False) at coordinates from one
multiply-add of the normalised plan, then costmap.safe_grid. Their gradient is grid_sample's own backward
kernel asked for the coordinates only (no gradient of the map), times the multiply-add's scale. safe_grid's
nan_to_num passes the gradient unchanged at finite coordinates (beyond +-1 border padding's gradient is zero
anyway), so it needs no factor. Tested against autograd in test/test_core_fastpath.py.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..objective import CostmapTerm

_BILINEAR, _BORDER = 0, 1  # grid_sampler's interpolation and padding mode codes


def grid_gradient(grad_out: Tensor, maps: Tensor, grid: Tensor) -> Tensor:
    """d (sum of grad_out * lookup) / d grid for a lookup of maps [B, C, h, w] at grid [B*K, H, 2] (rows
    b*K .. b*K+K-1 read map b; the costmap's: B = 1, K = M) with grad_out [B*K, H, C] -> [B*K, H, 2], in grid units."""
    b, c = maps.shape[:2]
    m, horizon = grid.shape[:2]
    # Laid out as the lookups are (map_input.sample_patches): a K x H image per map, views whatever the strides.
    grad_out = grad_out.reshape(b, m // b, horizon, c).permute(0, 3, 1, 2)  # [B, C, K, H]
    _, d_grid = torch.ops.aten.grid_sampler_2d_backward(
        grad_out.to(maps.dtype), maps, grid.reshape(b, m // b, horizon, 2).to(maps.dtype),
        _BILINEAR, _BORDER, False, (False, True))
    return d_grid.view(m, horizon, 2)


class CostmapGradient:
    """d CostmapTerm.score / d plans, added to a gradient in place (what NoisyGuide's autograd gives for the
    costmap read on x0_hat moved rigidly with x_t)."""

    def __init__(self, term: CostmapTerm):
        self.term = term
        self.cost = term.costmap.cost[None, None]  # [1, 1, h, w]: the graph's cost buffer itself, not a copy
        self.grad_out: Tensor | None = None  # d score / d each state's cost, made at the first call (needs H)

    def add_to(self, grad: Tensor, plans: Tensor) -> Tensor:
        """grad [M, H, D] += d score / d plans at normalised plans [M, H, D] (the clean estimates)."""
        grid = self.term.grid(plans)  # [M, H, 2]
        if self.grad_out is None:  # score = -weight * mean over the H states of the cost
            self.grad_out = torch.full((*grid.shape[:2], 1), -self.term.weight / grid.shape[1],
                                       dtype=grid.dtype, device=grid.device)
        d_grid = grid_gradient(self.grad_out, self.cost.to(grid.dtype), grid)  # as Costmap.sample reads it
        grad[..., :2].addcmul_(d_grid, self.term.grid_scale)
        return grad
