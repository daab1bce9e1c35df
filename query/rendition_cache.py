"""Renditions the service made (ace_core/media/renditions.py), kept under STORE/renditions/
within a size bound: the least recently served are evicted first. One transcode per item at
a time; a read-only or full store still plays (the rendition goes to a temporary file that is
removed once sent)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from ace_core.media.renditions import write_rendition

logger = logging.getLogger(__name__)
DEFAULT_MAX_MB = 2048


class RenditionCache:
    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_MB << 20):
        self.folder, self.max_bytes = Path(folder), max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, item_id: str, src: Path, modality: str) -> tuple[Path, str, bool]:
        """(rendition, MIME type, temporary): ``temporary`` when it could not be kept."""
        mime = "audio/mp4" if modality == "audio" else "video/mp4"
        cached = self.folder / f"{item_id}.mp4"
        with self._lock_of(item_id):
            if _touch(cached):
                return cached, mime, False
            tmp = self.folder / f".{item_id}.{threading.get_ident()}.tmp"
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp.touch()  # a read-only or full store fails here, not inside the encoder
            except OSError as e:
                logger.warning("rendition not cached (%s)", e.strerror or e)
                return self._temporary(src), mime, True
            try:
                write_rendition(src, tmp)
                tmp.replace(cached)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        self.evict(keep=cached)
        return cached, mime, False

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently served renditions until the folder fits the bound."""
        try:
            files = [(p.stat(), p) for p in self.folder.glob("*.mp4")]
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

    def _temporary(self, src: Path) -> Path:
        fd, name = tempfile.mkstemp(suffix=".mp4", prefix="ace-play-")
        os.close(fd)
        try:
            write_rendition(src, name)
        except BaseException:
            os.unlink(name)
            raise
        return Path(name)

    def _lock_of(self, item_id: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(item_id, threading.Lock())


def _touch(path: Path) -> bool:
    """Mark a kept rendition as just served; False when there is none."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return path.is_file()  # a read-only store: served, not touched
