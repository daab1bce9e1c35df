"""STORE/PIN: the served version held in place by `ace rollback`, so that a rollback sticks.

While PIN names the version LATEST names, a run that no person started (the nightly schedule,
the retrain trigger after an ingest: a flow run with ``explicit=False``) publishes nothing and
says so in one line. `ace rollback --unpin` lifts the pin, and so does any publish (only a
run a person started gets that far: an explicit `ace index` or `ace ingest`).

The file is one JSON object, replaced atomically and durably:
``{"version", "at", "reason", "previous"}`` (``previous``: the version served before the
rollback). The writes are ordered so that a kill at any point never leaves a PIN naming a
version LATEST does not name: a rollback removes an older pin before LATEST moves and writes
its own after; a publish removes the pin before LATEST moves. A kill in between leaves the
store unpinned (run the rollback again), never pinned to another version than the served
one; readers still take a pin as in force only while LATEST names its version.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ace_core.bounded_read import one_reason, read_bounded
from ace_index.storage.store.disk import fsync_dir, write_durably
from ace_index.storage.store.errors import DamagedStoreError
from ace_index.storage.store.names import VERSION_RE

PIN_MAX_BYTES = 4096


def pin_file(root: str | Path) -> Path:
    return Path(root) / "PIN"


def read_pin(root: str | Path) -> dict | None:
    """The recorded pin, None when there is none; a PIN that is not one is a damaged store
    (exit 3) whose message names the repair."""
    path = pin_file(root)
    hint = f"; `ace rollback --unpin --store {root}` removes it"
    try:
        raw = read_bounded(path, PIN_MAX_BYTES)
    except (FileNotFoundError, NotADirectoryError):  # no PIN, or no store there at all
        return None
    except (OSError, ValueError) as e:  # a directory, a FIFO, too long, unreadable
        raise DamagedStoreError(f"cannot read {path} ({one_reason(e)}){hint}") from e
    try:
        pin = json.loads(raw)
    except ValueError as e:
        raise DamagedStoreError(f"{path} does not hold a pin{hint}") from e
    version = pin.get("version") if isinstance(pin, dict) else None
    if not (isinstance(version, str) and VERSION_RE.match(version)):
        raise DamagedStoreError(f"{path} does not name a version{hint}")
    return pin


def pin_in_force(root: str | Path, latest: str | None) -> dict | None:
    """The pin while LATEST (``latest``) names its version; None otherwise (no pin, or LATEST
    moved or unreadable: a pin never holds another version than the served one in place)."""
    pin = read_pin(root)
    return pin if pin is not None and pin["version"] == latest else None


def write_pin(root: str | Path, version: str, reason: str, previous: str | None) -> dict:
    """Pin ``version`` (call under the store's locks, after LATEST names it)."""
    pin = {
        "version": version,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reason": reason,
        "previous": previous,
    }
    write_durably(pin_file(root), json.dumps(pin) + "\n")
    return pin


def remove_pin(root: str | Path) -> bool:
    """Remove PIN, durably (before LATEST moves away from its version); False when there was
    none."""
    path = pin_file(root)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except IsADirectoryError:  # a damaged store's PIN: not ours to keep either
        shutil.rmtree(path)
    fsync_dir(path.parent)
    return True
