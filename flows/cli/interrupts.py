"""Ctrl-C and SIGTERM end any command at once with one line: every child process (the
embedded Prefect API, Dask workers, decoders) is stopped and the process exits without
unwinding (as a kill -9 would, which the store is built to survive: nothing half-published,
staging reused or cleaned by the next run). Without this, a Ctrl-C killed the embedded API
first and the run went on for minutes before failing on the dead connection."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

EXIT_ON = {signal.SIGINT: 130, signal.SIGTERM: 143}
BUSY_HINT = "nothing was published; the next run reuses the finished embedding shards"


def install(what: str) -> None:
    """End ``what`` (the command's name) on SIGINT or SIGTERM."""

    def handler(signum, _frame):
        name = signal.Signals(signum).name
        try:
            os.write(2, f"ace: {what} interrupted ({name}): {BUSY_HINT}\n".encode())
            stop_children(first=signal.SIGKILL)  # SIGTERM let the embedded API print its
            #   services' shutdown tracebacks after this line (a flaky test caught it)
        finally:
            os._exit(EXIT_ON[signum])

    for sig in EXIT_ON:
        signal.signal(sig, handler)


def run_off_main_thread(work: Callable[[], int]) -> int:
    """``work()`` in a worker thread while the main thread waits, so this module's handlers
    stay the ones that answer a signal. A Prefect flow run in the main thread swaps in its
    own SIGTERM bridge, which turns the signal into an exception that its crash handling
    may end as exit 1 with a traceback; off the main thread it installs none."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["code"] = work()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name="ace-command", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)  # a bounded wait: the main thread stays free to run the handlers
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["code"]  # type: ignore[return-value]


def stop_children(grace_s: float = 2.0, first: int = signal.SIGTERM) -> None:
    """``first`` to every descendant process, SIGKILL to those left after ``grace_s``."""
    children = descendants(os.getpid())
    for pid in children:
        _signal(pid, first)
    deadline = time.monotonic() + grace_s
    while children and time.monotonic() < deadline:
        children = [pid for pid in children if _alive(pid)]
        time.sleep(0.05)
    for pid in children:
        _signal(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (Linux /proc; none elsewhere)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if sys.platform == "linux" else []:
        if entry.isdigit():
            ppid = _ppid(int(entry))
            if ppid is not None:
                parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(1024)
        return int(stat[stat.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat", "rb") as f:  # a zombie is gone for our purpose
        return b") Z " not in f.read(256)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
