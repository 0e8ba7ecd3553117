"""A training update replayed as one CUDA graph: the trainers' updates are hundreds of small kernels each,
so on a GPU their Python and kernel launches, not the arithmetic, set the pace (CODAC: ~35 ms a step on an
H200 shared by three trainings). A graph replays the recorded kernels on the same memory in one launch.

The update must not sync with the host and must take the same Python path on every call (the trainers
draw from the device RNG, return 0-d tensors, and choose a variant per step outside the captured code).
PyTorch's whole-network capture recipe: a few real steps on a side stream first, then capture.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

WARMUP_STEPS = 3


class GraphedStep:
    """Call it like the update it wraps. The first WARMUP_STEPS calls run eagerly (real steps); the next one
    captures the update and replays it; every later call replays. If capture fails (an op that syncs, say),
    it says why once and runs eagerly from then on: the training is the same, only slower."""

    def __init__(self, update: Callable[[], dict[str, Tensor]], name: str = "update", log=print):
        self.update, self.name, self.log = update, name, log
        self.calls, self.graph, self.outputs, self.eager = 0, None, None, False

    def __call__(self) -> dict[str, Tensor]:
        if self.graph is not None:
            self.graph.replay()
            return {k: v.clone() for k, v in self.outputs.items()}  # the next replay overwrites outputs
        if self.eager:
            return self.update()
        if self.calls < WARMUP_STEPS:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.update()
            torch.cuda.current_stream().wait_stream(side)
            return out
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = self.update()  # recorded, not run: the parameters are unchanged until the replay
        except Exception as error:  # noqa: BLE001 - any capture failure falls back to the same update, eager
            if self.log:
                self.log(f"[{self.name}] CUDA graph capture failed ({type(error).__name__}: {error}); running eagerly")
            self.eager = True
            return self.update()
        self.graph, self.outputs = graph, outputs
        return self()
