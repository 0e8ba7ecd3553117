"""Diffuser's 1-D temporal U-Net (Janner et al. 2022), sized for real-time control.

Convolutions run along the plan's time axis; every residual block is told the diffusion
step and the context (relative goal, start position) through an additive per-channel bias. Input and output: [B, H, state_dim];
the output is the predicted clean window x0. A U-Net built with map_channels > 0 also takes, per state, the map
patch's channels read at that state's position ([B, H, map_channels], appended to the state's numbers). SiLU instead of Diffuser's Mish: same shape of
curve, 8x cheaper on CPU, where it was a fifth of the replanning time.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(half) / max(half - 1, 1)), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angles = t.float()[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], -1)


class Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int = 8):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(min(groups, c_out), c_out), nn.SiLU())


class ResidualTemporalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int = 5, projected_skip: bool = False):
        """projected_skip: a 1x1 convolution on the skip even where c_in == c_out (where they differ it always is)."""
        super().__init__()
        self.conv1 = Conv1dBlock(c_in, c_out, kernel)
        self.conv2 = Conv1dBlock(c_out, c_out, kernel)
        self.cond = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out or projected_skip else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        return self.forward_biased(x, self.cond(cond)[:, :, None])

    def forward_biased(self, x: Tensor, bias: Tensor) -> Tensor:
        """With the conditioning bias [B, c_out, 1] already computed (the sampler hoists it out of its loop)."""
        h = self.conv1(x) + bias
        return self.conv2(h) + self.skip(x)


class TemporalUnet(nn.Module):
    def __init__(self, horizon: int, state_dim: int, context_dim: int, dim: int = 16, dim_mults=(1, 2, 4),
                 map_channels: int = 0):
        super().__init__()
        if horizon % 2 ** (len(dim_mults) - 1):
            raise ValueError(f"horizon {horizon} must be divisible by {2 ** (len(dim_mults) - 1)}")
        self.map_channels = map_channels
        dims = [state_dim + map_channels] + [dim * m for m in dim_mults]
        cond_dim = 4 * dim
        self.time_mlp = nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.context_mlp = nn.Sequential(nn.Linear(context_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        levels = len(dim_mults)
        self.downs = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == levels - 1
            self.downs.append(nn.ModuleList([
                # The input block of a U-Net reading the map keeps its projected skip when the map channels bring its
                # input to the first level's width (6 + 10 = 16): a model grown from one with fewer channels had it.
                ResidualTemporalBlock(c_in, c_out, cond_dim, projected_skip=i == 0 and map_channels > 0),
                ResidualTemporalBlock(c_out, c_out, cond_dim),
                nn.Conv1d(c_out, c_out, 3, stride=2, padding=1) if not last else nn.Identity(),
            ]))
        mid = dims[-1]
        self.mid1 = ResidualTemporalBlock(mid, mid, cond_dim)
        self.mid2 = ResidualTemporalBlock(mid, mid, cond_dim)
        self.ups = nn.ModuleList()
        for c_in, c_out in reversed(list(zip(dims[1:-1], dims[2:]))):
            self.ups.append(nn.ModuleList([
                ResidualTemporalBlock(c_out * 2, c_in, cond_dim),
                ResidualTemporalBlock(c_in, c_in, cond_dim),
                nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(Conv1dBlock(dim, dim, 5), nn.Conv1d(dim, state_dim, 1))

    @torch.no_grad()
    def grow_from(self, old: dict[str, Tensor]) -> None:
        """Load a trained U-Net that read fewer inputs: a shorter context (a model grown a route label) or no map
        channels along the plan (grown denoiser_reads_map). The old inputs keep their weights, the new ones start at
        zero, so it denoises exactly as before until it learns to read them. Any other difference is an error."""
        state = self.state_dict()
        grown = {}
        for key, value in old.items():
            want = state.get(key)
            if want is not None and want.shape != value.shape and want.dim() == value.dim() >= 2 \
                    and want.shape[0] == value.shape[0] and want.shape[2:] == value.shape[2:] \
                    and want.shape[1] > value.shape[1]:  # input columns added at the end (Linear / Conv1d weights)
                value = torch.cat([value, value.new_zeros((value.shape[0], want.shape[1] - value.shape[1],
                                                            *value.shape[2:]))], 1)
            grown[key] = value
        self.load_state_dict(grown)

    def forward(self, x: Tensor, t: Tensor, context: Tensor, map_along: Tensor | None = None) -> Tensor:
        """x [B, H, D] noisy plan, t [B] diffusion step index, context [B, C], map_along [B, H, map_channels] (a U-Net
        that reads the map; else None) -> clean plan x0 [B, H, D]."""
        return self.forward_biased(x, self.block_biases(self.time_mlp(t) + self.context_mlp(context)), map_along)

    def residual_blocks(self) -> list[ResidualTemporalBlock]:
        """In the order forward_biased consumes their biases."""
        blocks = [b for level in self.downs for b in level[:2]] + [self.mid1, self.mid2]
        return blocks + [b for level in self.ups for b in level[:2]]

    def block_biases(self, cond: Tensor) -> list[Tensor]:
        """Per-block conditioning biases [B, c, 1] from cond [B, 4*dim]. They depend only on the step
        and the context, not on x, so a sampler can compute them for all steps before its loop."""
        return [block.cond(cond)[:, :, None] for block in self.residual_blocks()]

    def forward_biased(self, x: Tensor, biases: list[Tensor], map_along: Tensor | None = None) -> Tensor:
        if (map_along is None) != (self.map_channels == 0):
            raise ValueError(f"this U-Net reads {self.map_channels} map channels along the plan; "
                             f"got {'none' if map_along is None else tuple(map_along.shape)}")
        biases = iter(biases)
        h = (x if map_along is None else torch.cat([x, map_along.to(x.dtype)], -1)).transpose(1, 2)
        skips = []
        for block1, block2, down in self.downs:
            h = block2.forward_biased(block1.forward_biased(h, next(biases)), next(biases))
            skips.append(h)
            h = down(h)
        h = self.mid2.forward_biased(self.mid1.forward_biased(h, next(biases)), next(biases))
        for block1, block2, up in self.ups:
            h = block2.forward_biased(block1.forward_biased(torch.cat([h, skips.pop()], 1), next(biases)), next(biases))
            h = up(h)
        return self.final(h).transpose(1, 2)
