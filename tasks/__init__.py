"""Prefect tasks: thin wrappers around ace_core and storage."""

from ace_index.tasks import _env  # noqa: F401  (must run before prefect is imported)
