"""Where operators look: stage lines and progress.

- Stage lines (discovered N, IDs fitted, published vN) and progress lines (embedding i/N with
  items/s, epoch e/E with loss and validation MRR) go to the run's logger inside a Prefect run
  (the UI and `prefect flow-run logs`); the `ace` CLI prints them on stderr when stderr is not
  a terminal (pipes, CI, a worker's log), where a terminal shows tqdm bars instead.
- A Prefect progress artifact follows embedding and training (its key names the store).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STAGE = {"ace_stage": True}  # marks our records among Prefect's (see flows/cli.py)
PROGRESS = {"ace_stage": True, "ace_progress": True}  # repeated lines; a terminal has bars


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("ace")


def stage(message: str, *args) -> None:
    run_logger().info(message, *args, extra=STAGE)


class Progress:
    """A tqdm bar (terminal only), a progress line every ``every`` share of the work or
    ``every_s`` seconds, and a Prefect progress artifact when inside a run."""

    def __init__(self, what: str, total: int, unit: str, key: str | None = None, *,
                 every: float = 0.1, every_s: float = 30.0):  # fmt: skip
        from tqdm.auto import tqdm

        self.what, self.total, self.unit = what, max(total, 1), unit
        self.done, self.started, self.last_line = 0, time.perf_counter(), 0.0
        self.step = max(1, int(self.total * every))
        self.every_s, self.next_at = every_s, self.step
        self.bar = tqdm(total=total, desc=what, unit=unit, file=sys.stderr, disable=None,
                        leave=False)  # fmt: skip
        self.artifact = _progress_artifact(key, what)

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        self.bar.update(n)
        now = time.perf_counter()
        if self.done >= self.next_at or now - self.last_line >= self.every_s or self.finished:
            self.next_at = self.done + self.step
            self.last_line = now
            rate = self.done / max(now - self.started, 1e-9)
            line = f"{self.what} {self.done}/{self.total} ({rate:.1f} {self.unit}/s)"
            run_logger().info(line + (f": {note}" if note else ""), extra=PROGRESS)
            _update_artifact(self.artifact, 100.0 * self.done / self.total)

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def close(self) -> None:
        self.bar.close()


def _progress_artifact(key: str | None, what: str):
    from prefect.runtime import flow_run

    if key is None or flow_run.get_id() is None:
        return None
    from prefect.artifacts import create_progress_artifact

    return create_progress_artifact(0.0, key=key, description=what)


def _update_artifact(artifact_id, percent: float) -> None:
    if artifact_id is not None:
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(artifact_id, min(percent, 100.0))


@contextmanager
def epoch_progress(what: str, total: int, key: str | None) -> Iterator[Callable]:
    """A ``progress(epoch, row)`` callback for training: one line per epoch with its loss
    and, when it was validated, the validation MRR@10."""
    p = Progress(what, total, "epoch", key, every=1.0 / max(total, 1), every_s=0)

    def update(epoch: int, row: dict) -> None:
        note = f"loss {row['loss']:.4f}"
        if row.get("val"):
            note += f", val MRR@10 {row['val']['MRR@10']:.3f}"
        p.bar.set_postfix_str(note)
        p.update(1, note)

    try:
        yield update
    finally:
        p.close()
