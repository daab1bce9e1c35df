"""The versioned index store.

STORE/
  versions/<version>/   immutable once published (v000001, v000002, ...)
  LATEST                name of the newest published version; replaced atomically, last
  staging/              work in progress (embedding shard cache, versions being built)
  sources.json          the store's sources (see storage/store/sources.py)
  ablations/<version>.json  ablation results computed after a version was published
  thumbs/<item_id>.jpg  thumbnails the service drew (derived, safe to delete)
  .lock                 held by a publisher (flock); a second publisher waits, then fails

A version folder's own file names are in storage/store/layout.py.

Publishing: the version is written under staging/, validated by the caller, renamed into
versions/ (same file system, atomic), and only then is LATEST replaced (write temp + rename).
A run killed at any point leaves LATEST and every published version untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.store.disk import fsync_dir, fsync_tree, owner_alive
from storage.store.layout import VersionLayout

logger = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^v(\d{6,})$")


class StoreError(Exception):
    """A store problem the user can act on (no version yet, unknown version, lock held)."""


class DamagedStoreError(StoreError):
    """The store's own files are not what it wrote (bad LATEST, a file that fails its
    manifest sha256): reported as a damaged store, never served."""

    def __init__(self, message: str):
        super().__init__(f"damaged store: {message}")


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def key(self) -> str:
        """A short name unique to this store's location (folder name + path hash), for
        artifact keys and event resources, so two stores never share a history."""
        root = self.root.resolve()
        slug = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-") or "store"
        return f"{slug[:24]}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"

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

    def ablations_file(self, version: str) -> Path:
        """Ablation results computed after a version was published (versions are
        immutable; these are derived, reusable results about one)."""
        return self.root / "ablations" / f"{version}.json"

    def thumbnail_file(self, item_id: str) -> Path:
        """A thumbnail the service drew (derived from the item's file; safe to delete)."""
        return self.root / "thumbs" / f"{item_id}.jpg"

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / version

    def version(self, version: str | None = None) -> VersionLayout:
        """The layout of a published version (LATEST when None)."""
        return VersionLayout(self.version_dir(self.resolve(version)))

    # ------------------------------------------------------------------ reading
    def _published_dirs(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.versions_dir.iterdir()
            if VERSION_RE.match(p.name) and VersionLayout(p).manifest.exists()
        )

    def versions(self) -> list[str]:
        """Published versions, oldest first. A version folder newer than LATEST is the
        leftover of a publish killed before LATEST moved: never listed, never served."""
        latest = self.latest()
        if latest is None:
            return []
        return [v for v in self._published_dirs() if _number(v) <= _number(latest)]

    def latest(self) -> str | None:
        """The served version, validated: a version name whose folder is published."""
        try:
            raw = self.latest_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # a directory, unreadable, ...
            raise DamagedStoreError(f"cannot read {self.latest_file}: {e.strerror}") from e
        name = raw.decode("ascii", errors="replace").strip()
        if not name:
            return None
        if not VERSION_RE.match(name) or len(raw) > 64:
            raise DamagedStoreError(
                f"{self.latest_file} does not hold a version name ({name[:40]!r}); "
                f"it should name one of {self.versions_dir}/v*"
            )
        if not VersionLayout(self.version_dir(name)).manifest.exists():
            raise DamagedStoreError(f"LATEST names {name}, which has no published manifest")
        return name

    def resolve(self, version: str | None = None) -> str:
        """A published version name: ``version`` itself, or LATEST when None."""
        if version in (None, "", "LATEST", "latest"):
            name = self.latest()
            if name is None:
                raise StoreError(f"no published version in {self.root} (run `ace index` first)")
            return name
        if version.isdigit():
            version = f"v{int(version):06d}"
        if not VERSION_RE.match(version) or version not in self.versions():
            known = ", ".join(self.versions()[-5:]) or "none"
            raise StoreError(f"unknown version {version[:40]!r} (known: {known})")
        return version

    def manifest(self, version: str | None = None) -> dict:
        v = self.resolve(version)
        path = VersionLayout(self.version_dir(v)).manifest
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DamagedStoreError(f"cannot read {path}: {e}") from e

    # ------------------------------------------------------------------ writing
    def next_version(self) -> str:
        """The name the next publish takes (call under ``lock()``, after ``drop_orphans``)."""
        nums = [_number(v) for v in self._published_dirs()]
        return f"v{(max(nums) + 1 if nums else 1):06d}"

    def drop_orphans(self) -> list[str]:
        """Remove version folders newer than LATEST (a publish killed between its rename and
        LATEST's move). Call under ``lock()``."""
        latest = self.latest()
        limit = _number(latest) if latest else 0
        orphans = [v for v in self._published_dirs() if _number(v) > limit]
        for v in orphans:
            logger.warning("removing %s: its publish never completed (LATEST is %s)", v, latest)
            shutil.rmtree(self.version_dir(v))
        return orphans

    def new_staging_version(self) -> VersionLayout:
        path = (
            self.staging_dir
            / "versions"
            / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        )
        path.mkdir(parents=True)
        (path / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        return VersionLayout(path)

    def discard_staged(self, staged: VersionLayout | str) -> None:
        """Remove a staged version that will not be published (no-op once published)."""
        path = Path(staged.root if isinstance(staged, VersionLayout) else staged)
        if path.is_dir() and self.staging_dir in path.parents:
            shutil.rmtree(path, ignore_errors=True)

    def clean_staging(self) -> list[str]:
        """Remove staged versions whose builder process is gone (killed runs)."""
        folder = self.staging_dir / "versions"
        removed = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not owner_alive(path / OWNER_FILE):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    @contextmanager
    def build_lock(self, what: str) -> Iterator[None]:
        """One build (index, ingest, retrain) at a time per store, taken before any work: a
        second one fails at once instead of after hours of training."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".build.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
                raise StoreError(
                    f"{self.root} is busy: {holder} is building a version; run again when it ends"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
            yield
        finally:
            os.close(fd)

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
        (staged.root / OWNER_FILE).unlink(missing_ok=True)
        fsync_tree(staged.root)
        os.rename(staged.root, target)
        fsync_dir(self.versions_dir)
        self._write_latest(version)
        return target

    def _write_latest(self, version: str) -> None:
        tmp = self.root / f".LATEST.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.latest_file)
        fsync_dir(self.root)


OWNER_FILE = ".owner"


def _number(version: str) -> int:
    return int(VERSION_RE.match(version).group(1))
