"""Checking a published version against its manifest (Iceberg/Delta style: a version's files
are what its manifest says, byte for byte, or the version is not served). The manifest itself
is checked against the sha256 written beside it at publish."""

from __future__ import annotations

from ace_index.storage.store import DamagedStoreError, IndexStore, open_store
from ace_index.storage.store.layout import VersionLayout


def verify_version(store: str, version: str | None = None) -> dict:
    """sha256 and size of every file of a version against its manifest, and no file the
    manifest does not list. Raises DamagedStoreError naming the first bad file."""
    report = version_report(store, version)
    if report["damaged"]:
        first = report["damaged"][0]
        more = len(report["damaged"]) - 1
        also = f" (and {more} more file(s): `ace verify --all` lists them)" if more else ""
        raise DamagedStoreError(f"{first}{also}")
    return report


def version_report(store: str, version: str | None = None) -> dict:
    """Every problem of one version (``damaged``: one line per bad file), never raising for
    a damaged file; ``ok`` when there is none."""
    s = open_store(store)
    return folder_report(s, s.resolve(version))


def folder_report(s: IndexStore, v: str) -> dict:
    """``version_report`` of a version folder named directly (LATEST may be damaged)."""
    layout = VersionLayout(s.version_dir(v))
    try:
        listed = {f["path"]: f for f in s.folder_manifest(v).get("files", [])}
    except (DamagedStoreError, TypeError, KeyError) as e:
        return _report(v, layout, {}, [str(e).removeprefix("damaged store: ")])
    damaged = [] if listed else [f"{layout.manifest}: lists no files"]
    present = _files(layout)
    damaged += [f"{layout.root / rel}: not in the manifest of {v}" for rel in present - set(listed)]
    for rel, entry in sorted(listed.items()):
        problem = _file_problem(layout, rel, entry, present)
        if problem:
            damaged.append(f"{layout.root / rel}: {problem} (in the manifest of {v})")
    return _report(v, layout, listed, sorted(damaged))


def _file_problem(layout: VersionLayout, rel: str, entry: dict, present: set[str]) -> str | None:
    from ace_core.media.discovery import sha256_file

    path = layout.root / rel
    if rel not in present:
        return "listed but missing"
    try:
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            return "does not match its sha256"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return None


def _report(v: str, layout: VersionLayout, listed: dict, damaged: list[str]) -> dict:
    return {
        "version": v,
        "files": len(listed),
        "bytes": sum(int(e.get("bytes", 0)) for e in listed.values()),
        "manifest_checksum": layout.manifest_sum.exists(),
        "ok": not damaged,
        "damaged": damaged,
    }


def _files(layout: VersionLayout) -> set[str]:
    skip = (layout.manifest, layout.manifest_sum)
    return {
        p.relative_to(layout.root).as_posix()
        for p in layout.root.rglob("*")
        if p.is_file() and p not in skip and not p.name.startswith(".")
    }
