"""The versioned index store.

STORE/
  versions/<version>/   immutable once published (v000001, v000002, ...)
  LATEST                name of the newest published version; replaced atomically, last
  staging/              work in progress (embedding shard cache, versions being built)
  sources.json          the store's sources (see storage/store/sources.py)
  ablations/<version>.json  ablation results computed after a version was published
  evaluations/<version>-<path>.json  a query path scored as served (`ace eval --path`)
  thumbs/<item_id>.jpg  thumbnails the service drew (derived, safe to delete)
  renditions/<item_id>.mp4  playable copies of videos and sounds the service made (bounded)
  history.jsonl         every move of LATEST (publish, rollback), with the manifest's sha256
  PIN                   the version a rollback holds in place (storage/store/pin.py)
  .lock                 held by a publisher (flock); a second publisher waits, then fails

A version folder's own file names are in storage/store/layout.py.

Publishing: the version is written under staging/, validated by the caller, renamed into
versions/ (same file system, atomic), and only then is LATEST replaced (write temp + rename).
A run killed at any point leaves LATEST and every published version untouched. No code
path deletes a published version except `ace prune`: a folder newer than LATEST that history
never recorded (a publish killed before LATEST moved) is not listed, not served and its number
is not reused; an unreadable, empty or missing LATEST beside published versions is a damaged
store (exit 3), repaired with `ace rollback`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from ace_core.bounded_read import one_reason, read_bounded
from ace_index.storage.store import disk
from ace_index.storage.store.errors import DamagedStoreError, StoreError
from ace_index.storage.store.history import (
    append_history,
    missing_version,
    read_history,
    served_versions,
)
from ace_index.storage.store.layout import (
    MANIFEST_MAX_BYTES,
    VersionLayout,
    check_manifest_sum,
    manifest_sum,
)
from ace_index.storage.store.locks import build_lock, build_lock_held_elsewhere, publish_lock
from ace_index.storage.store.names import VERSION_RE, version_name, version_number
from ace_index.storage.store.pin import pin_in_force, remove_pin

logger = logging.getLogger(__name__)


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
    def history_file(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def sources_file(self) -> Path:
        return self.root / "sources.json"

    def evaluation_file(self, version: str, path: str) -> Path:
        """A query path's evaluation of a version, computed after it was published."""
        return self.root / "evaluations" / f"{version}-{path}.json"

    def ablations_file(self, version: str) -> Path:
        """Ablation results computed after a version was published (versions are
        immutable; these are derived, reusable results about one)."""
        return self.root / "ablations" / f"{version}.json"

    def thumbnail_file(self, item_id: str) -> Path:  # drawn by the service: safe to delete
        return self.root / "thumbs" / f"{item_id}.jpg"

    @property
    def renditions_dir(self) -> Path:  # derived data: safe to delete
        return self.root / "renditions"

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / version

    def version(self, version: str | None = None) -> VersionLayout:
        """The layout of a published version (LATEST when None)."""
        return VersionLayout(self.version_dir(self.resolve(version)))

    # ------------------------------------------------------------------ reading
    def version_folders(self) -> list[str]:
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
        served = self._served(latest)
        return [v for v in self.version_folders() if v in served]

    def latest(self) -> str | None:
        """The served version, validated: a version name whose folder is published. None
        only for a store that has published nothing."""
        try:  # bounded and non-blocking: LATEST replaced by a FIFO or /dev/zero is damage
            raw = read_bounded(self.latest_file, 64)
        except FileNotFoundError:
            raw = b""
        except (OSError, ValueError) as e:  # a directory, a device, too long, unreadable
            raise DamagedStoreError(
                f"cannot read {self.latest_file} ({one_reason(e)}){self._repair_hint()}"
            ) from e
        name = raw.decode("ascii", errors="replace").strip()
        if not name:
            if self.version_folders():
                state = "empty" if self.latest_file.exists() else "missing"
                raise DamagedStoreError(f"{self.latest_file} is {state}{self._repair_hint()}")
            return None
        if not VERSION_RE.match(name):
            raise DamagedStoreError(
                f"{self.latest_file} does not hold a version name{self._repair_hint()}"
            )
        if not VersionLayout(self.version_dir(name)).manifest.exists():
            raise DamagedStoreError(
                f"LATEST names {name}, which has no published manifest{self._repair_hint()}"
            )
        return name

    def _repair_hint(self) -> str:
        found = self.version_folders()
        if not found:
            return ""
        return (
            f"; {len(found)} version folder(s) exist (newest {found[-1]}): "
            f"`ace rollback --store {self.root}` serves the newest version that verifies"
        )

    def history(self) -> list[dict]:
        """Every move of LATEST, oldest first (storage/store/history.py)."""
        return read_history(self.history_file)

    def orphans(self) -> list[str]:
        """Version folders that were never served: a publish killed before LATEST moved."""
        latest = self.latest()
        return [v for v in self.version_folders() if v not in self._served(latest)]

    def _served(self, latest: str | None) -> set[str]:
        return served_versions(self.history(), latest, self.version_folders(), version_number)

    def resolve(self, version: str | None = None) -> str:
        """A published version name: ``version`` itself, or LATEST when None."""
        if version in (None, "", "LATEST", "latest"):
            name = self.latest()
            if name is None:
                raise StoreError(f"no published version in {self.root} (run `ace index` first)")
            return name
        version = version_name(version)
        if version not in self.versions():
            raise StoreError(missing_version(version, self.history(), self.versions()))
        return version

    def manifest(self, version: str | None = None) -> dict:
        return self.folder_manifest(self.resolve(version))

    def folder_manifest(self, v: str) -> dict:
        """The checked manifest of a version folder named directly."""
        layout = VersionLayout(self.version_dir(v))
        try:
            raw = read_bounded(layout.manifest, MANIFEST_MAX_BYTES)
            manifest = json.loads(raw)
        except (OSError, ValueError) as e:
            raise DamagedStoreError(f"cannot read {layout.manifest}: {one_reason(e)}") from e
        check_manifest_sum(layout, raw)
        if not isinstance(manifest, dict):
            raise DamagedStoreError(f"{layout.manifest} does not hold a manifest")
        return manifest

    # ------------------------------------------------------------------ writing
    def next_version(self) -> str:
        """The name the next publish takes (call under ``lock()``): after every version
        folder, orphans included, so a number is never used twice."""
        nums = [version_number(v) for v in self.version_folders()]
        return f"v{(max(nums) + 1 if nums else 1):06d}"

    def new_staging_version(self) -> VersionLayout:
        path = (
            self.staging_dir
            / "versions"
            / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        )
        path.mkdir(parents=True)
        disk.mark_owner(path)
        return VersionLayout(path)

    def discard_staged(self, staged: VersionLayout | str) -> None:
        """Remove a staged version that will not be published (no-op once published)."""
        path = Path(staged.root if isinstance(staged, VersionLayout) else staged)
        if path.is_dir() and self.staging_dir in path.parents:
            shutil.rmtree(path, ignore_errors=True)

    def clean_staging(self) -> list[str]:
        """Remove staged versions whose builder process is gone (killed runs)."""
        return disk.remove_unowned(self.staging_dir / "versions")

    def build_lock_held_elsewhere(self) -> bool:
        return build_lock_held_elsewhere(self.root)

    def build_lock(self, what: str):
        """One build (index, ingest, retrain) at a time per store (storage/store/locks.py)."""
        return build_lock(self.root, what)

    def lock(self, timeout_s: float = 30.0):
        """The exclusive publisher lock (storage/store/locks.py)."""
        return publish_lock(self.root, timeout_s)

    def publish(self, staged: VersionLayout, version: str) -> Path:
        """Move a validated staged version into versions/ and point LATEST at it.

        Call under ``lock()``. The rename is atomic; LATEST is replaced last.
        """
        target = self.version_dir(version)
        if target.exists():
            raise StoreError(f"version {version} already exists")
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        (staged.root / disk.OWNER_FILE).unlink(missing_ok=True)
        disk.fsync_tree(staged.root)
        os.rename(staged.root, target)
        disk.fsync_dir(self.versions_dir)
        remove_pin(self.root)  # a publish lifts a rollback's pin, before LATEST moves away
        self.move_latest(version, "publish")
        return target

    def move_latest(self, version: str, operation: str) -> None:
        """Point LATEST at a published version and record the move in the history (call
        under ``lock()``). A publish records it after LATEST moved (a folder LATEST never
        named stays unlisted); any other move records it before, so a kill between the two
        never leaves a move unrecorded, only an entry LATEST contradicts (readers take LATEST
        as the truth: storage/store/history.py)."""
        previous = self.readable_latest()
        layout = VersionLayout(self.version_dir(version))
        entry = (self.history_file, operation, version, previous, manifest_sum(layout))
        if operation != "publish":
            append_history(*entry)
        self._write_latest(version)
        if operation == "publish":
            append_history(*entry)

    def pin(self) -> dict | None:
        """The pin of a rollback while LATEST names its version (storage/store/pin.py)."""
        return pin_in_force(self.root, self.readable_latest())

    def readable_latest(self) -> str | None:
        """LATEST, or None when it is missing or damaged (a repair moves it anyway)."""
        try:
            return self.latest()
        except DamagedStoreError:
            return None

    def _write_latest(self, version: str) -> None:
        disk.write_durably(self.latest_file, version + "\n")
