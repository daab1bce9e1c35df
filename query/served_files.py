"""Which file the service may send for an item: only one that still resolves, as a regular
file, inside the item's source, and still holds the bytes that were indexed (its sha256 is
the item id; checked once per file state, then remembered by inode, size and mtime); and how
the service's own cache files are opened (``open_cached``: regular files only, no link)."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from pathlib import Path

from ace_core.media.discovery import sha256_file

logger = logging.getLogger(__name__)


class FileGone(Exception):
    """The item's file cannot be served now (moved, replaced, outside its source)."""


class ServedFiles:
    def __init__(self, max_entries: int = 100_000):
        self._checked: dict[str, tuple] = {}  # item_id -> (dev, ino, size, mtime_ns)
        self._lock = threading.Lock()
        self._max = max_entries

    def path(self, item: dict, source_root: str | None) -> Path:
        """The real path of ``item``'s file, or FileGone with a reason without server paths."""
        location = item.get("location")
        if not location:
            raise FileGone("the item has no recorded location")
        real = os.path.realpath(location)
        root = os.path.realpath(source_root) if source_root else os.path.dirname(real)
        if not real.startswith(root.rstrip("/") + "/"):
            raise FileGone("the file now resolves outside its source")
        try:
            st = os.stat(real)
        except OSError:
            raise FileGone("the file is no longer at its location") from None
        if not stat.S_ISREG(st.st_mode):
            raise FileGone("the file is no longer a regular file")
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._checked.get(item["item_id"]) == state
        if not known:
            self._check_bytes(item, real, st.st_size, state)
        return Path(real)

    def _check_bytes(self, item: dict, real: str, size: int, state: tuple) -> None:
        same = size == item.get("bytes", size)
        try:
            same = same and sha256_file(real) == item["item_id"]
        except OSError:
            same = False
        if not same:
            raise FileGone("the file changed since it was indexed (re-index to serve it)")
        with self._lock:
            if len(self._checked) >= self._max:
                self._checked.clear()
            self._checked[item["item_id"]] = state


def open_cached(path: Path) -> int | None:
    """A read-only descriptor of the service's own cache file at ``path`` (a rendition, a
    thumbnail), or None when there is none to serve. Opened without following a link and
    required to be a regular file: whatever else is there (a link, a FIFO, a socket, a
    device) is treated as absent and removed, a link itself and never its target (a folder
    stays). Serve from the descriptor: the path may change after the check."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError:  # a link (ELOOP), a socket (ENXIO), an unreadable file
        _drop_planted(path)
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    _drop_planted(path)
    return None


def _drop_planted(path: Path) -> None:
    with contextlib.suppress(OSError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            os.unlink(path)  # removes the link itself
            logger.warning("removed a non-regular file planted in a cache (%s)", path.name)
