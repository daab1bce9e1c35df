"""The store's locks (flock, released when the process ends however it ends).

- ``.build.lock``: one build (index, ingest, retrain, rollback, prune) at a time, taken before
  any work; a second build fails at once. Re-entrant within one process (the CLI takes it
  first, the flow it runs takes it again).
- ``.lock``: the publisher lock around LATEST and sources.json; a second publisher waits.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ace_index.storage.store.errors import StoreError

_BUILD_LOCKS_HELD: set[str] = set()  # stores whose build lock this process holds


@contextmanager
def build_lock(root: Path, what: str) -> Iterator[None]:
    """One build (index, ingest, retrain) at a time per store, taken before any work: a
    second one fails at once instead of after hours of training. Re-entrant in one
    process: the CLI takes it first, the flow it runs takes it again."""
    key = str(root.resolve())
    if key in _BUILD_LOCKS_HELD:
        yield
        return
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
            raise StoreError(
                f"{root} is busy: {holder} is building a version; run again when it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
        _BUILD_LOCKS_HELD.add(key)
        try:
            yield
        finally:
            _BUILD_LOCKS_HELD.discard(key)
            _remove_if_unused(root, created)
    finally:
        os.close(fd)


def build_lock_held_elsewhere(root: Path) -> bool:
    """True while another process holds the store's build lock (a build is running). Read
    from /proc/locks, which lists every flock by inode, so the check itself never holds the
    lock (a probe with flock could make a build starting at that instant fail as busy)."""
    if str(root.resolve()) in _BUILD_LOCKS_HELD:
        return False  # this process holds it
    try:
        st = os.stat(root / ".build.lock")
        with open("/proc/locks") as f:
            locks = f.read()
    except OSError:
        return False  # no lock file (no build ran here) or no /proc: nothing known to hold it
    this = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    return any(_flock_of(line) == this for line in locks.splitlines())


def _flock_of(line: str) -> tuple[int, int, int] | None:
    """(major, minor, inode) of a /proc/locks FLOCK line ("1: FLOCK ADVISORY WRITE pid
    fe:00:2171466 0 EOF"); None for other lines."""
    fields = line.split()
    if len(fields) < 6 or fields[1] != "FLOCK":
        return None
    try:
        major, minor, inode = fields[5].split(":")
        return int(major, 16), int(minor, 16), int(inode)
    except ValueError:
        return None


def _remove_if_unused(root: Path, created: bool) -> None:
    """A store folder this build created and left empty (it failed before writing
    anything) is removed again: a failed run leaves nothing behind."""
    try:
        if created and set(os.listdir(root)) <= {".build.lock"}:
            (root / ".build.lock").unlink(missing_ok=True)
            root.rmdir()
    except OSError:
        pass


@contextmanager
def publish_lock(root: Path, timeout_s: float = 30.0) -> Iterator[None]:
    """Exclusive publisher lock; waits up to ``timeout_s`` then raises StoreError."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"another process is publishing to {root}; gave up after {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the flock
