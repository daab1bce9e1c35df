"""Which log lines reach the terminal: ours, one line each on stderr, and of Prefect's console
output only our stage lines and its warnings."""

from __future__ import annotations

import logging
import os
import sys

PROJECT_LOGGERS = ("ace_core", "ace_index", "ace")
# Dask's own loggers: a `--dask-local` run printed some 33 INFO lines (scheduler, workers,
# nanny) that say nothing an operator acts on; warnings and errors still show (issue 43)
DASK_LOGGERS = ("distributed", "bokeh", "tornado")


def configure_logging(verbose: bool) -> None:
    """Our loggers print one line each to stderr; they do not propagate to the root logger,
    where Prefect installs its own console handler (which would print every line twice)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in PROJECT_LOGGERS:
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if verbose else logging.WARNING)
        log.propagate = False
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    else:
        quiet_dask()


def quiet_dask() -> None:
    """Dask's loggers at WARNING: through dask's config (read when distributed is imported,
    here and in the worker processes a local cluster starts) and on any already imported."""
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # bokeh, tornado: above it
    for name in DASK_LOGGERS:
        log = logging.getLogger(name)
        log.setLevel(max(log.level, logging.WARNING))


class _CliConsole(logging.Filter):
    """What the CLI shows of Prefect's console output: our stage lines (progress lines only
    off a terminal, where no bars are drawn) and Prefect's warnings. Prefect's INFO chatter and
    its tracebacks of a failed run are left out: the CLI reports a failure in one line (details
    with -v) and the run's full log stays in Prefect's API (the UI)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("prefect"):
            return True
        if getattr(record, "ace_stage", False):
            return not (getattr(record, "ace_progress", False) and sys.stderr.isatty())
        if record.levelno >= logging.ERROR:
            return self.verbose
        return record.levelno >= logging.WARNING or self.verbose


def filter_prefect_console(verbose: bool) -> None:
    import prefect.main  # noqa: F401  (sets up Prefect's logging: its console handler)
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        logging.getLogger(n) for n in logging.root.manager.loggerDict if n.startswith("prefect")
    ]
    for log in loggers:
        for h in log.handlers:
            if isinstance(h, PrefectConsoleHandler):
                if hasattr(h, "console"):  # this command's stderr, not one an earlier closed
                    h.console.file = sys.stderr
                h.filters[:] = [f for f in h.filters if not isinstance(f, _CliConsole)]
                h.addFilter(_CliConsole(verbose))
