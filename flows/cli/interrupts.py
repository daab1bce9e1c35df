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
from collections.abc import Callable

EXIT_ON = {signal.SIGINT: 130, signal.SIGTERM: 143}
BUSY_HINT = "nothing was published; the next run reuses the finished embedding shards"


def install(what: str) -> None:
    """End ``what`` (the command's name) on SIGINT or SIGTERM."""

    def handler(signum, _frame):
        name = signal.Signals(signum).name
        try:
            children = freeze_children()  # none prints after the line below
            os.write(2, f"ace: {what} interrupted ({name}): {BUSY_HINT}\n".encode())
            _kill(children)  # SIGTERM let the embedded API print its services' shutdown
            #   tracebacks after this line (a flaky test caught it)
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


def freeze_children() -> list[int]:
    """SIGSTOP to every descendant process: stopped, none writes to the terminal and none
    dies, so Dask's nanny (a thread of this process) sees no worker die and starts none."""
    children = descendants(os.getpid())
    for pid in children:
        _signal(pid, signal.SIGSTOP)
    return children


def _kill(pids: list[int]) -> None:
    """SIGKILL, without waiting: ``os._exit`` follows at once, with no I/O in between to
    let another thread of this process run and notice a death (a wait here let Dask's nanny
    log a worker's death and start another, whose resource tracker printed tracebacks)."""
    for pid in pids:
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


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
