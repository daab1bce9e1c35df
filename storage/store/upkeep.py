"""Store upkeep: `ace rollback` (LATEST back to an older version, or repaired to the newest
version that verifies) and `ace prune` (the only code path that deletes a published
version; never the served one)."""

from __future__ import annotations

import shutil

from storage.store.store import DamagedStoreError, Store, StoreError, version_name
from storage.store.verify import folder_report


def rollback(store: str, version: str | None = None) -> dict:
    """Point LATEST at ``version`` (after verifying it), or by default at the newest
    version older than the served one that verifies; with LATEST unreadable, at the newest
    version that verifies. Recorded in the store's history."""
    s = Store(store)
    with s.build_lock("ace rollback"), s.lock():
        served = s.readable_latest()
        skipped: list[dict] = []
        for v in _candidates(s, served, version):
            report = folder_report(s, v)
            if report["ok"]:
                s.move_latest(v, "rollback")
                return {"latest": v, "previous": served, "skipped": skipped}
            skipped.append({"version": v, "damaged": report["damaged"]})
    if version is not None:
        raise DamagedStoreError(f"{version} does not verify: {skipped[0]['damaged'][0]}")
    raise StoreError(
        f"no version {'older than ' + served + ' ' if served else ''}verifies in {s.root}"
    )


def _candidates(s: Store, served: str | None, version: str | None) -> list[str]:
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
    """Delete all but the ``keep`` newest versions (the served one is always kept) and the
    folders of publishes that never completed."""
    if keep < 1:
        raise StoreError(f"--keep must be at least 1, got {keep}")
    s = Store(store)
    with s.build_lock("ace prune"), s.lock():
        served = s.latest()
        listed = s.versions()
        kept = set(listed[-keep:]) | ({served} if served else set())
        doomed = [v for v in listed if v not in kept] + s.orphans()
        if not dry_run:
            for v in doomed:
                shutil.rmtree(s.version_dir(v))
                s.ablations_file(v).unlink(missing_ok=True)
    return {"deleted": sorted(doomed), "kept": sorted(kept), "served": served, "dry_run": dry_run}
