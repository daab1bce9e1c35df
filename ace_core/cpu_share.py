"""Size torch's thread pool to the cores other processes leave free (a busy machine).

With every core given to torch and another CPU-bound process on one of them, OpenMP's
spin-waiting threads wait for each other at every parallel region: training ran 4x slower
beside one busy process on 2 cores (BENCHMARKS "A busy machine"). ``CoreShare`` measures how
many cores *other* processes used over the last interval (system busy time from /proc/stat
minus this process's own CPU time) and sets torch's intra-op threads to the rest, at least 1,
at most the cores this process may run on. Training calls it before every epoch.

``ACE_THREADS``: ``auto`` (default) as above; ``fixed`` leaves torch's own setting (the test
suite uses it: a thread count that changes between runs changes floating-point sums); a
number pins that many threads.
"""

from __future__ import annotations

import logging
import os
import time

logger = logging.getLogger(__name__)


def allowed_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _system_busy_seconds() -> float | None:
    """CPU seconds spent busy by all cores since boot (None where /proc/stat is absent)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CoreShare:
    """Before each unit of work: ``threads = update()`` sets torch's pool to the free cores."""

    def __init__(self, mode: str | None = None):
        self.mode = (mode or os.environ.get("ACE_THREADS", "auto")).strip().lower()
        self.cores = allowed_cores()
        self._mark = self._sample()

    def _sample(self) -> tuple[float, float | None, float]:
        return time.perf_counter(), _system_busy_seconds(), time.process_time()

    def other_busy_cores(self) -> float | None:
        """Cores used by other processes since the last call (None: not measurable)."""
        (t0, busy0, own0), now = self._mark, self._sample()
        self._mark = now
        wall = now[0] - t0
        if busy0 is None or now[1] is None or wall < 0.05:
            return None
        return max(0.0, ((now[1] - busy0) - (now[2] - own0)) / wall)

    def update(self) -> int | None:
        import torch

        if self.mode == "fixed":
            return None
        if self.mode != "auto":
            threads = max(1, int(self.mode))
        else:
            others = self.other_busy_cores()
            if others is None:
                return None
            threads = max(1, min(self.cores, self.cores - round(others)))
        if threads != torch.get_num_threads():
            logger.info(
                "torch threads %d -> %d (cores free for this process)",
                torch.get_num_threads(),
                threads,
            )
            torch.set_num_threads(threads)
        return threads

    def settle(self, seconds: float = 0.2) -> int | None:
        """Measure over a short idle interval first (the start of a stage)."""
        if self.mode != "auto":
            return self.update()
        self._mark = self._sample()
        time.sleep(seconds)
        return self.update()


def flush_denormals() -> bool:
    """Treat denormal floats (magnitudes below 1.2e-38) as zero, in this thread and in the
    threads it starts from now on (x86 FTZ/DAZ; False where the CPU has no such mode).

    A trained decoder's saturated sigmoid gates put denormals in its gradients, and each one
    costs a CPU core many cycles: the same training steps ran 2.3x slower without this
    (docs/BENCHMARKS.md). The float mode belongs to a thread and is copied into the threads it
    starts, so it must be set before the thread pools that will do the work exist (an OpenMP
    team made earlier keeps its old mode): the flows call this first thing."""
    import numpy as np
    import torch

    for t in (np.float16, np.float32, np.float64, np.longdouble):
        np.finfo(t)  # measured now: numpy warns when it first measures a float type under FTZ
    return torch.set_flush_denormal(True)
