"""Shared timing and memory helpers of the benchmark scripts."""

import statistics
import time


def run_times(fn, repeats: int, sync=None) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``fn`` (seconds). ``sync``, a device's wait
    (e.g. ``torch.cuda.synchronize``), is called before each clock starts and again before it
    is read."""
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return times


def median_time(fn, repeats: int, sync=None) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (seconds); ``sync`` as in run_times."""
    return statistics.median(run_times(fn, repeats, sync))


def reset_peak_rss() -> None:
    """Linux: set this process's peak RSS (VmHWM) to its current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)
