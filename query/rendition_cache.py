"""Renditions the service made (ace_core/media/renditions.py), kept under STORE/renditions/
within a size bound: the least recently served are evicted first. One transcode per item at
a time; a read-only or full store still plays (the rendition goes to a temporary file). A
kept rendition is opened without following a link and must be a regular file that probes
whole (checked once per file state): anything else found there is removed and remade."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

from ace_core.media.renditions import probe_rendition, write_rendition
from ace_index.query.served_files import open_cached

logger = logging.getLogger(__name__)
DEFAULT_MAX_MB = 2048


class Rendition(NamedTuple):
    fd: int  # open, read-only, a regular file: the caller sends from it, then closes it
    mime: str  # video/mp4 or audio/mp4
    path: Path  # the kept rendition, or a temporary file
    temporary: bool  # ``path`` is the caller's to remove (the store could not keep it)


class RenditionCache:
    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_MB << 20):
        self.folder, self.max_bytes = Path(folder), max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._whole: dict[str, tuple] = {}  # item_id -> (dev, ino, size, mtime_ns) that probed

    def open(self, item_id: str, src: Path, modality: str) -> Rendition:
        """The item's rendition, opened: the kept one when it is whole, else made now."""
        mime = "audio/mp4" if modality == "audio" else "video/mp4"
        cached = self.folder / f"{item_id}.mp4"
        with self._lock_of(item_id):
            fd = self._open_kept(item_id, cached)
            if fd is not None:
                return Rendition(fd, mime, cached, False)
            made, fd = self._make(item_id, src, cached)
            if made == cached:
                self._remember(item_id, fd)
        if made == cached:
            self.evict(keep=cached)
        return Rendition(fd, mime, made, made != cached)

    def get(self, item_id: str, src: Path, modality: str) -> tuple[Path, str, bool]:
        """(rendition, MIME type, temporary): ``temporary`` when it could not be kept."""
        rendition = self.open(item_id, src, modality)
        os.close(rendition.fd)
        return rendition.path, rendition.mime, rendition.temporary

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently served renditions until the folder fits the bound."""
        try:
            files = [(p.lstat(), p) for p in self.folder.glob("*.mp4")]
        except OSError:
            return []
        total = sum(st.st_size for st, _ in files)
        removed = []
        for st, path in sorted(files, key=lambda f: f[0].st_mtime_ns):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= st.st_size
                removed.append(path)
        return removed

    def _open_kept(self, item_id: str, cached: Path) -> int | None:
        """The kept rendition, opened and marked as just served; None when there is none, or
        what is there is not a whole rendition (then it is removed)."""
        fd = open_cached(cached)
        if fd is None:
            return None
        if self._whole.get(item_id) != _state(fd):
            with os.fdopen(os.dup(fd), "rb") as f:
                whole = probe_rendition(f)
            if not whole:
                os.close(fd)
                logger.warning("a kept rendition is damaged or cut short: made again")
                with contextlib.suppress(OSError):
                    cached.unlink()
                return None
        with contextlib.suppress(OSError):  # a read-only store: served, not touched
            os.utime(fd)
        self._remember(item_id, fd)
        return fd

    def _make(self, item_id: str, src: Path, cached: Path) -> tuple[Path, int]:
        """Render ``src`` to ``cached`` (to a temporary file when the store cannot keep it):
        the path and the rendition, opened before it is renamed into place. Opened after, it
        could be gone: another item's ``evict`` (outside this item's lock) may remove it the
        moment it has a name there, and the request answered 500 (issue 42)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # a fresh name (O_EXCL): a read-only or full store fails here, not in the encoder
            fd, tmp = tempfile.mkstemp(prefix=f".{item_id}.", suffix=".tmp", dir=self.folder)
            os.close(fd)
        except OSError as e:
            logger.warning("rendition not cached (%s)", e.strerror or e)
            return self._temporary(src)
        try:
            write_rendition(src, tmp)
            fd = _open_read(tmp)
            try:
                os.replace(tmp, cached)
            except BaseException:
                os.close(fd)
                raise
        except IsADirectoryError:  # a folder where the rendition goes: left alone
            logger.warning("rendition not cached (a folder is in its place)")
            return self._temporary(src)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return cached, fd

    def _temporary(self, src: Path) -> tuple[Path, int]:
        fd, name = tempfile.mkstemp(suffix=".mp4", prefix="ace-play-")
        os.close(fd)
        try:
            write_rendition(src, name)
            return Path(name), _open_read(name)
        except BaseException:
            os.unlink(name)
            raise

    def _remember(self, item_id: str, fd: int) -> None:
        with self._guard:
            if len(self._whole) > 100_000:
                self._whole.clear()
            self._whole[item_id] = _state(fd)

    def _lock_of(self, item_id: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(item_id, threading.Lock())


def _open_read(path: str | Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _state(fd: int) -> tuple:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
