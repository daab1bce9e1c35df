"""The versioned index store.

STORE/
  versions/<version>/   immutable once published (v000001, v000002, ...)
  LATEST                name of the newest published version; replaced atomically, last
  staging/              work in progress (embedding shard cache, versions being built)
  sources.json          the store's sources (see storage/sources.py)
  .lock                 held by a publisher (flock); a second publisher waits, then fails

A version folder's own file names are in storage/layout.py.

Publishing: the version is written under staging/, validated by the caller, renamed into
versions/ (same file system, atomic), and only then is LATEST replaced (write temp + rename).
A run killed at any point leaves LATEST and every published version untouched.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.layout import VersionLayout

logger = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^v(\d{6,})$")


class StoreError(Exception):
    """A store problem the user can act on (no version yet, unknown version, lock held)."""


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def latest_file(self) -> Path:
        return self.root / "LATEST"

    def embed_cache_dir(self, config_hash: str) -> Path:
        return self.staging_dir / "embed" / config_hash[:16]

    @property
    def sources_file(self) -> Path:
        return self.root / "sources.json"

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / version

    def version(self, version: str | None = None) -> VersionLayout:
        """The layout of a published version (LATEST when None)."""
        return VersionLayout(self.version_dir(self.resolve(version)))

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.versions_dir.iterdir()
            if VERSION_RE.match(p.name) and VersionLayout(p).manifest.exists()
        )

    def latest(self) -> str | None:
        try:
            name = self.latest_file.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def resolve(self, version: str | None = None) -> str:
        """A published version name: ``version`` itself, or LATEST when None."""
        if version in (None, "", "LATEST", "latest"):
            name = self.latest()
            if name is None:
                raise StoreError(f"no published version in {self.root} (run `ace index` first)")
            return name
        if version.isdigit():
            version = f"v{int(version):06d}"
        if not VersionLayout(self.version_dir(version)).manifest.exists():
            known = ", ".join(self.versions()[-5:]) or "none"
            raise StoreError(f"unknown version {version!r} (known: {known})")
        return version

    def manifest(self, version: str | None = None) -> dict:
        v = self.resolve(version)
        return json.loads(VersionLayout(self.version_dir(v)).manifest.read_text())

    # ------------------------------------------------------------------ writing
    def next_version(self) -> str:
        nums = [int(VERSION_RE.match(v).group(1)) for v in self.versions()]
        return f"v{(max(nums) + 1 if nums else 1):06d}"

    def new_staging_version(self) -> VersionLayout:
        path = (
            self.staging_dir
            / "versions"
            / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        )
        path.mkdir(parents=True)
        return VersionLayout(path)

    @contextmanager
    def lock(self, timeout_s: float = 30.0) -> Iterator[None]:
        """Exclusive publisher lock; waits up to ``timeout_s`` then raises StoreError."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"another process is publishing to {self.root}; gave up after "
                            f"{timeout_s:.0f} s"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def publish(self, staged: VersionLayout, version: str) -> Path:
        """Move a validated staged version into versions/ and point LATEST at it.

        Call under ``lock()``. The rename is atomic; LATEST is replaced last.
        """
        target = self.version_dir(version)
        if target.exists():
            raise StoreError(f"version {version} already exists")
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        _fsync_tree(staged.root)
        os.rename(staged.root, target)
        _fsync_dir(self.versions_dir)
        self._write_latest(version)
        return target

    def _write_latest(self, version: str) -> None:
        tmp = self.root / f".LATEST.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.latest_file)
        _fsync_dir(self.root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))
