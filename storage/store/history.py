"""STORE/history.jsonl: one JSON line per move of LATEST (publish, rollback), appended and
fsynced. It tells a rolled-back version (published once, kept) from the folder of a publish
killed before LATEST moved (never served). A publish is recorded after LATEST moved, a
rollback before: a rollback killed in between leaves an entry whose move never happened,
which the next move (its ``previous``) or LATEST itself contradicts (``moves_made``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ace_core.bounded_read import read_bounded

HISTORY_MAX_BYTES = 64 << 20


def read_history(path: Path) -> list[dict]:
    """Every recorded move, oldest first (an unreadable line is skipped)."""
    try:
        lines = read_bounded(path, HISTORY_MAX_BYTES).splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("latest"), str):
            out.append(entry)
    return out


def append_history(
    path: Path, operation: str, latest: str, previous: str | None, manifest_sha256: str | None
) -> None:
    entry = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "operation": operation,
        "latest": latest,
        "previous": previous,
        "manifest_sha256": manifest_sha256,
    }
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


def moves_made(entries: list[dict], latest: str | None) -> list[dict]:
    """The entries whose move happened: a rollback entry is dropped when the move after it
    started elsewhere, or, the last one, when LATEST names another version (``latest``
    None: unknown, kept)."""
    made = []
    for entry, after in zip(entries, [*entries[1:], None]):
        then = latest if after is None else after.get("previous")
        if entry.get("operation") != "rollback" or then in (None, entry["latest"]):
            made.append(entry)
    return made


def served_versions(entries: list[dict], latest: str | None, folders: list[str], number) -> set:
    """The version folders LATEST ever named: LATEST itself (a publish killed after LATEST
    moved has no entry yet), every entry's version and the one it moved from, and those
    older than the first publish entry (published before the store kept a history; with no
    publish entry: up to the newest version named). ``number``: a version name's number."""
    known = {latest} if latest else set()
    known |= {e["latest"] for e in entries}
    known |= {e["previous"] for e in entries if e.get("previous")}
    published = [number(e["latest"]) for e in entries if e.get("operation") != "rollback"]
    if published:
        before = min(published)
    else:
        before = max(map(number, known)) + 1 if known else 0
    return {v for v in folders if v in known or number(v) < before}


def missing_version(version: str, entries: list[dict], listed: list[str]) -> str:
    """Why a well-formed version name is not served: LATEST once named it and `ace prune`
    deleted it since, or no such version was ever published."""
    kept = ", ".join(listed[-5:]) or "none"
    if any(version in (e["latest"], e.get("previous")) for e in entries):
        return f"{version} was pruned (`ace prune` deleted it; versions kept: {kept})"
    return f"unknown version {version[:40]!r} (known: {kept})"
