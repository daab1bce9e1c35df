"""STORE/history.jsonl: one JSON line per move of LATEST (publish, rollback), appended and
fsynced after LATEST moved. It tells a rolled-back version (published once, kept) from the
folder of a publish killed before LATEST moved (never served)."""

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
