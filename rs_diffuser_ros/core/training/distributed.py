"""Multi-GPU data parallelism when launched by `torchrun` (it sets WORLD_SIZE/RANK/LOCAL_RANK)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device


@dataclass
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def setup(cls, device: str = "auto") -> "DistributedContext":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(0, 1, resolve_device(device))
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and device in ("auto", "cuda"):
            torch.cuda.set_device(local_rank)
            dev, backend = torch.device("cuda", local_rank), "nccl"
        else:
            dev, backend = resolve_device("cpu" if device == "auto" else device), "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, device_id=dev if dev.type == "cuda" else None)
        return cls(rank, world, dev)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any rank (a collective: every rank must call it)."""
        if not self.enabled:
            return flag
        value = torch.tensor(float(flag), device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
