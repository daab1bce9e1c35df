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

from ace_core.retrieval.evaluation import validation_order

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

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        key: str | None = None,
        *,
        every: float = 0.1,
        every_s: float = 30.0,
    ):
        from tqdm.auto import tqdm

        self.what, self.total, self.unit = what, max(total, 1), unit
        self.done, self.started, self.last_line = 0, time.perf_counter(), 0.0
        self.before = 0  # units an earlier run did (resumed): on the bar, not in the rate
        self.step = max(1, int(self.total * every))
        self.every_s, self.next_at = every_s, self.step
        self.bar = tqdm(
            total=total, desc=what, unit=unit, file=sys.stderr, disable=None, leave=False
        )
        self.artifact = _progress_artifact(key, what)

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        self.bar.update(n)
        now = time.perf_counter()
        if self.done >= self.next_at or now - self.last_line >= self.every_s or self.finished:
            self.next_at = self.done + self.step
            self.last_line = now
            rate = (self.done - self.before) / max(now - self.started, 1e-9)
            line = f"{self.what} {self.done}/{self.total} ({rate:.1f} {self.unit}/s)"
            run_logger().info(line + (f": {note}" if note else ""), extra=PROGRESS)
            _update_artifact(self.artifact, 100.0 * self.done / self.total)

    def resumed(self, n: int) -> None:
        """``n`` units an earlier run did (a checkpoint): counted as done, not in the rate."""
        self.done += n
        self.before += n
        self.bar.update(n)

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def grow(self, n: int) -> None:
        """``n`` more units of work (a later part of the same work, on the same bar)."""
        self.total += n
        self.bar.total = self.total
        self.bar.refresh()

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


class TrainingProgress:
    """Training's progress: a bar over the step budget (terminal), a line every tenth of it or
    30 s with the examples per item so far and the time left, one line with the time it
    expects once steady steps are timed, and a line per validation. The first
    ``WARM_STEPS`` steps are left out of that timing (the 100k build's first 20 steps took
    1.7x a steady step on average, and its expected time read 1h19m for 53 minutes)."""

    WARM_STEPS = 10
    TIMED_STEPS, TIMED_SECONDS = 100, 30.0  # what is timed before the expected time is said

    def __init__(self, key: str | None, n_items: int):
        self.key, self.n_items = key, max(n_items, 1)
        self.bar: Progress | None = None
        self.first: tuple[float, int] | None = None  # (time, step) at the first call
        self.warm: tuple[float, int] | None = None  # ... once WARM_STEPS more are done
        self.announced = False

    def step(self, done: int, budget: int, examples: int) -> None:
        now = time.perf_counter()
        if self.bar is None:
            self.bar = Progress("training", budget, "step", self.key)
            self.first = (now, done)
            if done > 1:  # called from step 1 on (workers: from 1, once a second): resumed
                stage("training: resumed at step %d of %d (its checkpoint)", done - 1, budget)
                self.bar.resumed(done - 1)
        if self.warm is None and done - self.first[1] >= self.WARM_STEPS:
            self.warm = (now, done)
        per_step = self._per_step(now, done)
        if not self.announced and (self._timed(now, done) or done == budget):
            self.announced = True
            self._expect(budget, examples / done * budget / self.n_items, per_step)
        left = _duration(per_step * (budget - done))
        note = f"{examples / self.n_items:.1f} examples/item, {left} left"
        self.bar.bar.set_postfix_str(note, refresh=False)
        self.bar.update(done - self.bar.done, note)

    def _per_step(self, now: float, done: int) -> float:
        """Seconds a step since the warm-up (since the first call until then)."""
        since, step = self.warm if self.warm and done > self.warm[1] else self.first
        return (now - since) / max(done - step, 1)

    def _timed(self, now: float, done: int) -> bool:
        if self.warm is None:
            return False
        since, step = self.warm
        return done - step >= self.TIMED_STEPS or now - since >= self.TIMED_SECONDS

    @staticmethod
    def _expect(budget: int, per_item: float, per_step: float) -> None:
        stage(
            "training: %d steps planned (%.0f examples per item), about %s at %.2f s a step; "
            "it stops earlier once validation flattens",
            budget,
            per_item,
            _duration(per_step * budget),
            per_step,
        )

    def epoch(self, epoch: int, row: dict) -> None:
        if row.get("val"):
            v = row["val"]
            line = "training: epoch %d (step %d), loss %.4f, validation MRR@10 %.3f, R@1 %.3f"
            stage(line, epoch, row.get("steps", 0), row["loss"], v["MRR@10"], v["R@1"])
        if row.get("stopped") and self.bar is not None:  # the last epoch's row
            self._stopped(row.get("steps", self.bar.done), row["stopped"])

    def _stopped(self, steps: int, why: str) -> None:
        """Training that stops before its step budget (validation flattened, its epochs done)
        ends its bar, its lines and its artifact at 100%, saying where and why."""
        bar = self.bar
        if steps >= bar.total:
            return  # the budget is spent: the last step line read N/N already
        bar.bar.total = bar.done = bar.bar.n = max(steps, 1)
        bar.bar.refresh()
        reason = STOPPED.get(why, why)
        line = f"training stopped early at step {steps} of {bar.total}: {reason} (100% done)"
        run_logger().info(line, extra=PROGRESS)
        _update_artifact(bar.artifact, 100.0)

    def close(self) -> None:
        """The bar and the artifact end at 100% even when validation stopped training before
        its budget (the work is done, not cut)."""
        if self.bar is not None:
            _update_artifact(self.bar.artifact, 100.0)
            self.bar.close()


STOPPED = {"flattened": "validation flattened", "epochs": "its epochs are done"}


class DenseBaselineProgress:
    """The dense caption baseline's progress (ace_core.retrieval.dense.DenseProgress): a line
    with the steps it plans (and where a resumed fit starts), a bar over them (terminal) with
    a line every tenth or 30 s naming the epoch and its validation R@1, and a line when it
    ends (validation may end it early)."""

    def __init__(self, key: str | None):
        self.key, self.bar = key, None
        self.best: dict | None = None  # the validation the fit keeps (by MRR@10, then R@1)

    def __call__(self, epoch: int, steps: int, planned: int, val: dict | None) -> None:
        if self.bar is None:
            stage("dense baseline: %d steps planned", planned)
            self.bar = Progress("dense baseline", planned, "step", self.key)
        if val and (self.best is None or validation_order(val) > validation_order(self.best)):
            self.best = val
        if epoch == 0:  # before its first epoch: where a resumed fit stood
            if steps:
                stage("dense baseline: resumed at step %d of %d (its checkpoint)", steps, planned)
                self.bar.resumed(steps)
            return
        note = f"epoch {epoch}"
        if val:
            note += f", validation R@1 {val['R@1']:.3f}"
        self.bar.update(steps - self.bar.done, note)

    def close(self, trained: bool = True) -> None:
        """The end line and the artifact at 100% once trained (``trained``: the fit returned;
        a failed one only closes the bar)."""
        if self.bar is None:
            return  # trained by an earlier run of this build (its checkpoint), or not at all
        if trained:
            best = "" if self.best is None else f", best validation R@1 {self.best['R@1']:.3f}"
            line = "dense baseline trained: %d of %d steps%s"
            stage(line, self.bar.done, self.bar.total, best)
            _update_artifact(self.bar.artifact, 100.0)
        self.bar.close()


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


@contextmanager
def training_progress(key: str | None, n_items: int) -> Iterator[TrainingProgress]:
    progress = TrainingProgress(key and f"{key}-training", n_items)
    try:
        yield progress
    finally:
        progress.close()


@contextmanager
def dense_progress(key: str | None) -> Iterator[DenseBaselineProgress]:
    progress = DenseBaselineProgress(key and f"{key}-dense")
    try:
        yield progress
    except BaseException:
        progress.close(trained=False)
        raise
    progress.close()


@contextmanager
def text_progress(key: str | None) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for encoding captions into the feature store: a
    bar and lines once texts are being encoded (nothing when every text is stored)."""
    bar: list[Progress] = []
    counted = {"earlier calls": 0, "this call": 0}  # texts done by the store's earlier calls

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(Progress("caption features", total, "text", key))
        elif done <= counted["this call"]:  # within a call ``done`` only grows: a new call
            counted["earlier calls"] = bar[0].done  # (a fit asks for train, val, then test)
            bar[0].grow(total)
        counted["this call"] = done
        bar[0].update(counted["earlier calls"] + done - bar[0].done)

    try:
        yield update
    finally:
        for p in bar:
            p.close()
