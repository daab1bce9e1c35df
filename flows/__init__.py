"""Prefect flows and the `ace` command line."""

from ace_index.tasks import _env  # noqa: F401  (must run before prefect is imported)
