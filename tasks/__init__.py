"""Prefect tasks: thin wrappers around ace_core and storage."""

from tasks import _env  # noqa: F401  (must run before prefect is imported)
