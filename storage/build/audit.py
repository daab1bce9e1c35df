"""Identifier diffs between versions (what `ace audit` and every manifest report)."""

from __future__ import annotations

from ace_core.ids.sids import SemanticIDs
from ace_index.storage.formats.semantic_id_table import read_semantic_ids
from ace_index.storage.formats.tables import read_parquet
from ace_index.storage.store import IndexStore, StoreError, open_store
from ace_index.storage.store.history import moves_made

MOVES_SHOWN = 10  # recent moves of LATEST in an audit report


def id_diff(old: SemanticIDs | None, new: SemanticIDs, *, detail: bool = False) -> dict:
    """added / removed / changed / unchanged item counts between two ID sets."""
    before = dict(zip(old.item_ids, old.sids)) if old is not None else {}
    after = dict(zip(new.item_ids, new.sids))
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    common = set(after) & set(before)
    changed = sorted(i for i in common if before[i] != after[i])
    out = {
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "unchanged": len(common) - len(changed),
    }
    if detail:
        out["changed_items"] = [{"item_id": i, "from": before[i], "to": after[i]} for i in changed]
        out["added_items"] = [{"item_id": i, "sid": after[i]} for i in added]
        out["removed_items"] = [{"item_id": i, "sid": before[i]} for i in removed]
    return out


def audit(store: str, from_version: str | None = None, to_version: str | None = None) -> dict:
    """Identifier diff between two versions. By default LATEST against its parent or, when
    LATEST last moved by a rollback, against the version served before it (what holders of
    IDs saw change); ``moves`` lists the recent moves of LATEST from the store's history."""
    s = open_store(store)
    to_v = s.resolve(to_version)
    rollback = _last_rollback(s) if from_version is None and to_version is None else None
    from_v = (
        from_version or (rollback or {}).get("previous") or s.manifest(to_v).get("parent_version")
    )
    if from_v is None:
        raise StoreError(f"{to_v} has no parent version; give --from")
    from_v = s.resolve(from_v)
    old = read_semantic_ids(s.version(from_v).semantic_ids)
    new = read_semantic_ids(s.version(to_v).semantic_ids)
    why = why_ids(s.manifest(to_v).get("ids", {}).get("id_policy"))
    if rollback:
        why = f"LATEST rolled back from {from_v} to {to_v} at {rollback['at']}"
    moves = moves_made(s.history(), s.latest())[-MOVES_SHOWN:]
    diff = _with_file_names(id_diff(old, new, detail=True), s, from_v, to_v)
    return {"from": from_v, "to": to_v, "why": why, "moves": moves, **diff}


def _with_file_names(diff: dict, s: IndexStore, from_v: str, to_v: str) -> dict:
    """Each listed item with its ``source_id:path`` (from the version that holds it)."""
    names = {}
    for v in (from_v, to_v):
        items = read_parquet(s.version(v).items, ["item_id", "source_id", "path"]).to_pylist()
        names.update({r["item_id"]: f"{r['source_id'] or '-'}:{r['path']}" for r in items})
    for key in ("changed_items", "added_items", "removed_items"):
        for entry in diff.get(key, []):
            entry["file"] = names.get(entry["item_id"])
    return diff


def run_files(store: str, version: str) -> dict:
    """A build's summary by file (``source_id:path``): the ok files ``version`` added and
    removed against its parent (every file for a first version), and the files it recorded
    as failed, with their reasons. Names are sorted; callers cap what they show."""
    s = open_store(store)
    parent = s.manifest(version).get("parent_version")
    new = _ok_files(s, version)
    old = _ok_files(s, parent) if parent else {}
    failed = read_parquet(s.version(version).items, ["source_id", "path", "status", "error"])
    return {
        "added": sorted(new[i] for i in set(new) - set(old)),
        "removed": sorted(old[i] for i in set(old) - set(new)),
        "failed": [
            {"file": f"{r['source_id'] or '-'}:{r['path']}", "error": r["error"]}
            for r in failed.to_pylist()
            if r["status"] == "failed"
        ],
    }


def _ok_files(s: IndexStore, version: str) -> dict[str, str]:
    """item_id -> ``source_id:path`` of a version's ok items."""
    rows = read_parquet(s.version(version).items, ["item_id", "source_id", "path", "status"])
    return {
        r["item_id"]: f"{r['source_id'] or '-'}:{r['path']}"
        for r in rows.to_pylist()
        if r["status"] == "ok"
    }


def _last_rollback(s: IndexStore) -> dict | None:
    """The last move of LATEST when it was a rollback to the version LATEST names now."""
    history = s.history()
    last = history[-1] if history else None
    if last and last.get("operation") == "rollback" and last["latest"] == s.latest():
        return last if last.get("previous") else None
    return None


def why_ids(policy: dict | None) -> str:
    """Why a version's IDs are what they are, from its ID report's ``id_policy``."""
    if not policy:
        return "not recorded (a version built before IDs were kept across re-indexes)"
    if "kept_from" in policy and policy.get("drift") is None:
        return f"IDs kept from {policy['kept_from']} (an ingest: its codebooks frozen)"
    if "kept_from" in policy:
        return f"IDs kept from {policy['kept_from']} (codebook drift {policy['drift']})"
    return f"IDs refitted: {policy.get('refit')}"
