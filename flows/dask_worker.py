"""Preloaded into each local Dask worker process that ``ShardRunner(dask_workers=N)`` starts
(distributed imports it as the worker is built): the worker ignores SIGINT. A terminal's
Ctrl-C goes to the whole process group; a worker that took it raised KeyboardInterrupt, its
nanny (in the parent) printed the death and started another, and multiprocessing's resource
tracker printed tracebacks for it: about 25 lines after the command's own one (issue 43).
The parent owns the workers: its SIGINT handler kills them (flows/cli/interrupts.py), a
parent that exits ends them (distributed's parent-alive pipe), and a cluster closed in the
ordinary way closes them."""

from __future__ import annotations

import signal
import threading


def ignore_interrupts() -> None:
    """SIGINT ignored in this process (a no-op off the main thread, where Python cannot set
    a handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def dask_setup(worker) -> None:  # noqa: ARG001 - distributed's preload interface
    ignore_interrupts()  # again: the worker's event loop may have set its own since import


ignore_interrupts()  # as early as distributed lets it run: when the worker imports this
