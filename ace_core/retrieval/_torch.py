"""Small helpers shared by retrieval training and search (torch, step budget, timing)."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext

import torch


@contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch (dropout masks) for a block without changing the caller's RNG state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def autocast(device: torch.device, precision: str | None = None):
    """Autocast to bfloat16 when ``precision`` is bfloat16 (None: on CUDA only), else none."""
    if precision is None:
        precision = "bfloat16" if device.type == "cuda" else "float32"
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def steps_left(max_steps: int | None, taken: int) -> int | None:
    """Batches the rest of a step budget allows (None: no budget). Training stops when it is
    spent; the epoch that spends it is partial (its batches are shuffled: a random subset)."""
    return None if max_steps is None else max(0, max_steps - taken)


class Stopwatch:
    """Wall seconds per phase, in order (``lap`` ends the current phase)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now


def cosine_factor(step: int, planned: int) -> float:
    """The learning rate's factor at ``step``: a cosine from 1 to 5% over ``planned`` steps,
    then 5%."""
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / max(planned, 1), 1.0)))
