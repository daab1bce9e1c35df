"""The store's errors: what a user can act on, and a damaged store (exit 3)."""

from __future__ import annotations


class StoreError(Exception):
    """A store problem the user can act on (no version yet, unknown version, lock held)."""


class DamagedStoreError(StoreError):
    """The store's own files are not what it wrote (bad LATEST, a file that fails its
    manifest sha256): reported as a damaged store, never served."""

    def __init__(self, message: str):
        super().__init__(f"damaged store: {message}")


class VersionNameError(StoreError):
    """A version that is neither a number ("3") nor a version name ("v000003"): the
    request's fault (HTTP 400), not an unknown version (404)."""
