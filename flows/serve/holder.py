"""The served version (LATEST), swapped in by a watcher thread when LATEST moves, plus pinned
older versions; a version that fails to load leaves the old one serving."""

from __future__ import annotations

import logging
import threading

from fastapi import HTTPException

from ace_index.flows.serve.guard import public
from ace_index.flows.serve.results import store_error
from ace_index.query.loaded import LoadedVersion
from ace_index.query.search import Searcher
from ace_index.storage.store import StoreError

logger = logging.getLogger(__name__)


class VersionHolder(Searcher):
    """The served version (LATEST), swapped by a watcher thread when LATEST moves, plus
    pinned older versions (query.search.Searcher); a failed load keeps the old version."""

    def __init__(self, store: str, watch_s: float = 2.0):
        super().__init__(store, warm=True)
        self.watch_s = watch_s
        self.last_error: str | None = None
        self.loading = False
        self._stop = threading.Event()

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self._watch, name="ace-serve-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_s):
            self.refresh()

    def refresh(self) -> bool:
        """Load LATEST if it moved; on failure keep serving what is loaded."""
        try:
            latest = self.moved_latest()
            if latest is None:  # the store reads well as it is now (a LATEST repaired to
                self.last_error = None  # the loaded version): an old error no longer holds
                return False
            self.loading = True
            self.swap_in(latest)
            self.last_error = None
            logger.info("serving %s", latest)
            return True
        except Exception as e:  # noqa: BLE001 - reported in /healthz, old version kept
            self.last_error = f"{type(e).__name__}: {e}"
            logger.warning("could not load the new version: %s", self.last_error)
            return False
        finally:
            self.loading = False

    def get(self, version: str | None = None) -> LoadedVersion:
        if self.current is None:
            raise HTTPException(503, public(self.last_error or "no published version"))
        try:
            return self.version(version)
        except StoreError as e:
            raise store_error(e) from None
