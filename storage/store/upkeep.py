"""Store upkeep: `ace rollback` (LATEST back to an older version, or repaired to the newest
version that verifies, and pinned there: storage/store/pin.py), `ace rollback --unpin` and
`ace prune` (the only code path that deletes a published
version; never the served one). A deleted version leaves versions/ in one rename before its
files go, so a killed prune never leaves a half-deleted version; the next prune reclaims what
it left."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ace_index.storage.store.disk import fsync_dir
from ace_index.storage.store.errors import DamagedStoreError, StoreError
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.names import VERSION_RE, version_name
from ace_index.storage.store.pin import read_pin, remove_pin, write_pin
from ace_index.storage.store.protocol import IndexStore, open_store
from ace_index.storage.store.verify import folder_report


def rollback(store: str, version: str | None = None, reason: str | None = None) -> dict:
    """Point LATEST at ``version`` (after verifying it), or by default at the newest
    version older than the served one that verifies; with LATEST unreadable, at the newest
    version that verifies. Recorded in the store's history and pinned (``reason``: why, in
    the user's words), so that no scheduled or triggered run publishes over it."""
    s = open_store(store)
    with s.build_lock("ace rollback"), s.lock():
        served = s.readable_latest()
        skipped: list[dict] = []
        for v in _candidates(s, served, version):
            report = folder_report(s, v)
            if report["ok"]:
                pin = _move_and_pin(s, v, served, reason)
                return {"latest": v, "previous": served, "skipped": skipped, "pinned": pin}
            skipped.append({"version": v, "damaged": report["damaged"]})
    if version is not None:
        raise DamagedStoreError(f"{version} does not verify: {skipped[0]['damaged'][0]}")
    raise StoreError(
        f"no version {'older than ' + served + ' ' if served else ''}verifies in {s.root}"
    )


def _move_and_pin(s: IndexStore, v: str, served: str | None, reason: str | None) -> dict:
    """LATEST to ``v``, then the pin on it: an older pin goes first, so that a kill at any
    point never leaves a pin naming a version LATEST does not name."""
    remove_pin(s.root)
    s.move_latest(v, "rollback")
    why = reason or (f"rolled back from {served}" if served else "LATEST repaired")
    return write_pin(s.root, v, why, served)


def unpin(store: str) -> dict:
    """`ace rollback --unpin`: lift the pin, so that scheduled and triggered runs publish
    again (``unpinned``: the pin lifted, None when there was none; an unreadable PIN is
    removed too)."""
    s = open_store(store)
    with s.build_lock("ace rollback --unpin"), s.lock():
        try:
            pin = read_pin(s.root)
        except DamagedStoreError as e:
            pin = {"version": None, "at": None, "reason": str(e), "previous": None}
        remove_pin(s.root)
        return {"unpinned": pin, "latest": s.readable_latest()}


def _candidates(s: IndexStore, served: str | None, version: str | None) -> list[str]:
    folders = s.version_folders()
    if version is not None:
        name = version_name(version)
        if name not in folders:
            raise StoreError(
                f"unknown version {name[:40]!r} (known: {', '.join(folders[-5:]) or 'none'})"
            )
        return [name]
    if served is not None:
        listed = s.versions()
        return [v for v in reversed(listed) if v < served]
    known = {e["latest"] for e in s.history()}
    return [v for v in reversed(folders) if v in known or not known]


def prune(store: str, keep: int, dry_run: bool = False) -> dict:
    """Delete all but the ``keep`` newest versions (the served one is always kept), the
    folders of publishes that never completed, and what a killed prune left (``reclaimed``)."""
    if keep < 1:
        raise StoreError(f"--keep must be at least 1, got {keep}")
    s = open_store(store)
    with s.build_lock("ace prune"), s.lock():
        served = s.latest()
        listed = s.versions()
        kept = set(listed[-keep:]) | ({served} if served else set())
        doomed = [v for v in listed if v not in kept] + [o for o in s.orphans() if o not in kept]
        leftovers = _leftovers(s, served)
        if not dry_run:
            for v in doomed:
                _delete_version(s, v)
            for path in leftovers:  # one may have gone with a version deleted again above
                shutil.rmtree(path, ignore_errors=True)
    return {
        "deleted": sorted(doomed),
        "reclaimed": [p.name for p in leftovers],
        "kept": sorted(kept),
        "served": served,
        "dry_run": dry_run,
    }


DELETING = ".deleting-"  # a version folder being deleted, out of versions/'s listing


def _delete_version(s: IndexStore, v: str) -> None:
    """The folder leaves versions/ at once (a rename), then its files go: a prune killed
    midway leaves a hidden folder that the next prune reclaims, never a half-deleted
    version."""
    trash = s.versions_dir / f"{DELETING}{v}"
    if trash.exists():  # a killed prune's, of a folder since published under this number
        shutil.rmtree(trash)
    os.rename(s.version_dir(v), trash)
    fsync_dir(s.versions_dir)
    s.ablations_file(v).unlink(missing_ok=True)
    shutil.rmtree(trash)


def _leftovers(s: IndexStore, served: str | None) -> list[Path]:
    """Folders in versions/ that hold no version: a killed prune's deletions, and version
    folders without a manifest that LATEST does not name (a publish renames a folder in
    with its manifest, so only a deletion leaves one)."""
    if not s.versions_dir.is_dir():
        return []
    return sorted(
        p
        for p in s.versions_dir.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and (
            p.name.startswith(DELETING)
            or (VERSION_RE.match(p.name) and p.name != served and not _has_manifest(p))
        )
    )


def _has_manifest(folder: Path) -> bool:
    return VersionLayout(folder).manifest.exists()
