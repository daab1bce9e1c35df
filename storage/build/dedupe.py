"""One version per change (issue 43): a rebuild equal to any published version publishes
nothing, and a retrain raised for a version that a newer build already trained on does nothing.

A staged rebuild *equals* a published version when it reuses that version's build (the same
build key: embeddings, captions, ID / retriever / training settings, code version;
storage/build/staging.py) and holds exactly its items table (the same files, sources, paths and
failures). Every published version is compared, LATEST first: equal to LATEST is "nothing
changed". Equal to another version X publishes nothing when LATEST holds the same inputs,
settings and code as X (``same_inputs``: the same items, captions, embeddings and IDs, the same
configuration and code version; a retrain of X is); LATEST is not moved back to X. Where
LATEST's inputs differ from X's (files or captions changed, then changed back), the build is a
change from what is served: it publishes, reusing X's build (no training), or LATEST would go
on serving what the folders no longer hold.

A retriever is trained *from scratch* by a full rebuild and by a retrain; an ingest fine-tunes
its parent's. A retrain raised for an ingest's version is *covered* by a newer version trained
from scratch on every ok item of it (the nightly that ran before the retrain got the slot).
"""

from __future__ import annotations

from ace_index.storage.formats.tables import read_items_table
from ace_index.storage.formats.version_data import known_item_ids
from ace_index.storage.store import IndexStore
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.names import version_number

FROM_SCRATCH = ("full_rebuild", "retrain")


def equal_published(s: IndexStore, staged: VersionLayout) -> str | None:
    """The published version the staged rebuild equals (LATEST first, then newest first)
    where publishing it would change nothing served: LATEST itself, or a version whose
    inputs, settings and code LATEST holds too. None: publish (it differs from every one,
    has no build key, IDs refitted, or LATEST's inputs differ)."""
    if not staged.build_key.exists():
        return None
    key = staged.build_key.read_text()
    latest = s.latest()
    if latest is None:
        return None
    items = None
    for v in [latest, *(v for v in reversed(s.versions()) if v != latest)]:
        layout = s.version(v)
        if not layout.build_key.exists() or layout.build_key.read_text() != key:
            continue
        items = read_items_table(staged.items) if items is None else items
        if not items.equals(read_items_table(layout.items)):
            continue
        if v == latest or same_inputs(s, latest, v):
            return v
    return None


DATA_FILES = ("items.parquet", "captions.parquet", "semantic_ids.parquet", "embeddings/")


def same_inputs(s: IndexStore, a: str, b: str) -> bool:
    """Two published versions built from the same inputs, settings and code: the same items,
    captions, IDs and embeddings (their manifests' sha256), configuration and code version."""
    ma, mb = s.manifest(a), s.manifest(b)
    if any(ma.get(k) != mb.get(k) for k in ("config_hash", "code_version")):
        return False
    return _data_files(ma) == _data_files(mb)


def _data_files(m: dict) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in m["files"] if f["path"].startswith(DATA_FILES)}


def covering_version(s: IndexStore, version: str) -> str | None:
    """The newest version published after ``version`` whose retriever was trained from
    scratch on every ok item of ``version``; None when there is none."""
    need = known_item_ids(s.version(version), ok_only=True)
    later = [v for v in s.versions() if version_number(v) > version_number(version)]
    for v in reversed(later):
        if s.manifest(v).get("operation") not in FROM_SCRATCH:
            continue
        if need <= known_item_ids(s.version(v), ok_only=True):
            return v
    return None


def retrain_target(s: IndexStore, version: str) -> tuple[str | None, str | None]:
    """What a retrain that no person started, raised for ``version`` (the trigger after its
    ingest), trains: ``(version, None)`` while LATEST names it; otherwise ``(None, why)``
    when a newer version trained from scratch covers it, or when LATEST no longer holds its
    items (removed, rolled back); else ``(LATEST, why)``: only newer ingests, fine-tuned on top
    of it, hold its items, and one retrain of LATEST covers them all (their own triggers then
    find it covered)."""
    latest = s.latest()
    if version == latest:
        return version, None
    covering = covering_version(s, version)
    if covering is not None:
        op = s.manifest(covering)["operation"]
        return None, f"{covering} ({op}) already trained on every item of {version}"
    need = known_item_ids(s.version(version), ok_only=True)
    if not need <= known_item_ids(s.version(latest), ok_only=True):
        return None, f"LATEST ({latest}) no longer holds every item of {version}"
    return latest, f"{version} is no longer LATEST: retraining LATEST ({latest}), which holds it"
