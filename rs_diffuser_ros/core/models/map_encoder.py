"""The map encoder: an egocentric map patch (core/map_input.py) -> one embedding vector per robot.

Run once per replan on the B robots' patches (not on the B x K candidates, not per denoising step);
the embedding joins the relative goal in the context that conditions the denoiser and the critic.
Three stride-2 convolutions (32 -> 4 cells: each output sees the whole 6.4 m patch) and a linear
layer: small enough for the 2-core CPU budget (docs/method_choices.md, "Map conditioning").
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class MapEncoder(nn.Module):
    def __init__(self, channels: int, cells: int, embedding: int, width: int = 32):
        super().__init__()
        self.channels = channels
        if cells % 8:
            raise ValueError(f"map patch cells must be a multiple of 8 (three stride-2 convolutions), got {cells}")
        self.net = nn.Sequential(
            nn.Conv2d(channels, width // 2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(width * (cells // 8) ** 2, embedding), nn.SiLU(),
            nn.Linear(embedding, embedding),
        )

    def forward(self, patches: Tensor) -> Tensor:
        """patches [B, >= channels, P, P] -> [B, embedding]: a map gives every channel it has (map_input),
        the encoder reads the first `channels` it was built for."""
        return self.net(patches[:, :self.channels])

    @torch.no_grad()
    def grow_from(self, old: dict[str, Tensor]) -> None:
        """Load a trained encoder that read fewer patch channels: its filters for the old channels, zeros for
        the new ones, so the warm-started model computes exactly what the old one did until it learns more."""
        state = self.state_dict()
        for key, value in old.items():
            if state[key].shape == value.shape:
                state[key] = value
            else:  # the first convolution: [out, channels, 3, 3]
                state[key] = torch.zeros_like(state[key])
                state[key][:, :value.shape[1]] = value
        self.load_state_dict(state)


class NoMapEncoder(nn.Module):
    """The encoder slot of a model that is not map-conditioned: no weights, never called."""

    def forward(self, patches: Tensor) -> Tensor:
        raise RuntimeError("this model is not map-conditioned (model.map_patch_cells = 0): it takes no map patch")
