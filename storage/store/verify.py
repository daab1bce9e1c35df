"""Checking a published version against its manifest (Iceberg/Delta style: a version's files
are what its manifest says, byte for byte, or the version is not served)."""

from __future__ import annotations

from storage.store import DamagedStoreError, Store
from storage.store.layout import VersionLayout


def verify_version(store: str, version: str | None = None) -> dict:
    """sha256 and size of every file of a version against its manifest, and no file the
    manifest does not list. Raises DamagedStoreError naming the first bad file."""
    from ace_core.media.discovery import sha256_file

    s = Store(store)
    v = s.resolve(version)
    layout = s.version(v)
    listed = {f["path"]: f for f in s.manifest(v).get("files", [])}
    if not listed:
        raise DamagedStoreError(f"{v}: its manifest lists no files")
    present = _files(layout)
    for rel in sorted(set(present) - set(listed)):
        raise DamagedStoreError(f"{layout.root / rel}: not in the manifest of {v}")
    total = 0
    for rel, entry in sorted(listed.items()):
        path = layout.root / rel
        if rel not in present:
            raise DamagedStoreError(f"{path}: listed in the manifest of {v} but missing")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise DamagedStoreError(
                f"{path}: does not match the sha256 in the manifest of {v} (run `ace verify` "
                f"for the whole store; republish it with `ace index`)"
            )
        total += entry["bytes"]
    return {"version": v, "files": len(listed), "bytes": total, "ok": True}


def _files(layout: VersionLayout) -> set[str]:
    return {
        p.relative_to(layout.root).as_posix()
        for p in layout.root.rglob("*")
        if p.is_file() and p != layout.manifest and not p.name.startswith(".")
    }
