"""Inside a data-parallel worker (distributed.py launches them): this process's rank, its
share of an epoch's batches, and a training step wrapped in DDP. Without a process group (one
worker, the default) every function here is the identity."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(batches: list, rank: int, size: int) -> list:
    """Every ``size``-th batch from ``rank``, as many for every worker (the rest dropped)."""
    if size == 1:
        return batches
    n = len(batches) // size
    return batches[rank::size][:n]


class StepLoss(nn.Module):
    """One training step's loss as a forward pass, so DDP can wrap it (its gradient hooks
    are armed by the wrapper's forward): ``loss(kind, batch)``."""

    def __init__(self, decoder, compute):
        super().__init__()
        self.decoder, self.compute = decoder, compute

    def forward(self, kind: str, batch: torch.Tensor) -> torch.Tensor:
        loss = self.compute(self.decoder, kind, batch)
        offsets = self.decoder.item_offset
        if offsets is not None and kind != "cap":  # DDP needs the sparse offsets' gradient
            loss = loss + 0.0 * offsets(batch[:1].to(loss.device)).sum()  # on every rank
        return loss


def data_parallel(decoder, compute):
    """``compute(decoder, kind, batch) -> loss`` under DDP when in a process group of more
    than one worker; else ``compute`` itself."""
    if world()[1] == 1:
        return lambda kind, batch: compute(decoder, kind, batch)
    device = next(decoder.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        StepLoss(decoder, compute), device_ids=ids, find_unused_parameters=True
    )
