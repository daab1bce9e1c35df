"""Shared timing and memory helpers of the benchmark scripts."""

import statistics
import threading
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


def run_clients(loop, clients: int, seconds: float, stop: threading.Event) -> float:
    """``clients`` threads each running ``loop(i)`` until ``stop`` is set, ``seconds`` after
    they started; the wall seconds until the last one ended."""
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return time.perf_counter() - started
