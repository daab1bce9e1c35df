"""Assembling a version under staging/: its tables from the embedding shards (and the parent's
tables for an ingest), a staged copy for a retrain, and reuse of a published build that had
exactly the same inputs. Nothing here is visible to readers until storage/build/publish.py moves it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ace_core.config_io import config_hash
from ace_core.index_config import IndexConfig
from ace_core.media.discovery import CaptionEntry, Discovery, sha256_file
from ace_core.media.embed_config import EmbedConfig
from ace_index.storage.build.discovery_record import discovery_sources, load_discovery
from ace_index.storage.build.item_rows import with_dates, with_locations
from ace_index.storage.build.publish import code_version
from ace_index.storage.formats.shards import read_shard_items, with_current_paths
from ace_index.storage.formats.tables import embeddings_table, write_table_atomic
from ace_index.storage.formats.version_data import (
    captions_table,
    ok_item_ids,
    read_captions,
    read_items_table,
    version_embeddings,
)
from ace_index.storage.store import IndexStore, StoreError, open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.sources import Source, write_planned_sources


def stage_ingest(
    store: str, discovery_path: str, shard_outputs: list[dict], parent: str
) -> VersionLayout:
    """A staged ingest: the parent's items, embeddings and captions (its captions win) plus
    the new items of the shards."""
    s = open_store(store)
    p = s.version(parent)
    found = load_discovery(discovery_path)
    items = pa.concat_tables([read_items_table(p.items), read_shard_items(shard_outputs)])
    old = read_captions(p)
    captions = {**{k: v for k, v in found.captions.items() if k not in old}, **old}
    parts = p.embedding_parts() + [Path(o["embeddings_path"]) for o in shard_outputs]
    with _new_staged(s) as staged:
        items = with_current_paths(items, found.files)
        _stage_tables(staged, items, parts, captions, s, discovery_sources(discovery_path))
    return staged


def stage_rebuild(
    store: str, discovery_path: str, shard_outputs: list[dict], base: str | None = None
) -> VersionLayout:
    """A staged full rebuild of the discovered files: embeddings from the shards, and from
    ``base`` (a published version with the same embedding config) for the ok items it holds
    that are still present; every row takes its current source and path, captions are the
    current ones."""
    s = open_store(store)
    found = load_discovery(discovery_path)
    items = read_shard_items(shard_outputs)
    parts = [Path(o["embeddings_path"]) for o in shard_outputs]
    with _new_staged(s) as staged:
        if base is not None:
            kept_items, kept_part = _kept_from_base(s.version(base), found, staged)
            items = pa.concat_tables([kept_items, items])
            parts = kept_part + parts
        items = with_current_paths(items, found.files)
        walked = discovery_sources(discovery_path)
        _stage_tables(staged, items, parts, dict(found.captions), s, walked)
    return staged


@contextmanager
def _new_staged(s: IndexStore) -> Iterator[VersionLayout]:
    """A new staged version folder, removed again if filling it fails (a full disk)."""
    staged = s.new_staging_version()
    try:
        yield staged
    except BaseException:
        s.discard_staged(staged)
        raise


def embedding_base(store: str, embed: EmbedConfig) -> str | None:
    """LATEST when its embeddings were made with ``embed``: a full rebuild takes them from it
    instead of embedding those files again."""
    from ace_index.storage.formats.manifest import version_config
    from ace_index.storage.store.verify import verify_version

    s = open_store(store)
    if s.latest() is None or version_config(store).embed != embed:
        return None
    verify_version(store, s.latest())  # its files are carried into the new version
    return s.latest()


def _kept_from_base(
    base: VersionLayout, found: Discovery, staged: VersionLayout
) -> tuple[pa.Table, list[Path]]:
    """The base's ok item rows still present, and embedding parts holding exactly them (the
    base's own parts when nothing was removed, else one filtered part)."""
    present = {f.item_id for f in found.files}
    items = read_items_table(base.items)
    ok = pa.compute.equal(items["status"], "ok")
    kept = items.filter(pa.compute.and_(ok, pa.compute.is_in(items["item_id"], pa.array(present))))
    if kept.num_rows == len(ok_item_ids(items)):
        return kept, base.embedding_parts()
    ids, mods, x = version_embeddings(base)
    rows = [n for n, i in enumerate(ids) if i in present]
    part = staged.root / "kept-embeddings.parquet"
    table = embeddings_table([ids[n] for n in rows], [mods[n] for n in rows], x[rows])
    write_table_atomic(table, part)
    return kept, [part]


def _stage_tables(
    staged: VersionLayout,
    items: pa.Table,
    embedding_parts: Sequence[Path],
    captions: dict[str, CaptionEntry],
    store: IndexStore,
    walked: Sequence[Source],
) -> None:
    """items.parquet, embeddings/part-*.parquet, captions.parquet, and the sources walked
    (registered when the version publishes). Parts of published (immutable) versions are
    hard-linked; parts from the mutable embedding cache are copied, so a published file never
    shares its bytes with the cache."""
    write_planned_sources(staged, walked)
    items = with_dates(with_locations(items, store, walked))
    write_table_atomic(items.sort_by("item_id"), staged.items)
    staged.embeddings_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for src in embedding_parts:
        if pq.ParquetFile(src).metadata.num_rows == 0:
            continue
        dst = staged.embedding_part(n)
        if store.versions_dir in Path(src).parents:
            _link_or_copy(str(src), str(dst))
        elif src.parent == staged.root:
            os.replace(src, dst)
        else:
            shutil.copyfile(src, dst)
        n += 1
    write_table_atomic(captions_table(captions, set(ok_item_ids(items))), staged.captions)


def stage_copy(store: str, version: str) -> VersionLayout:
    """A staged copy of a version's tables, IDs and codebooks (retrain on the same items)."""
    s = open_store(store)
    src = s.version(version)
    with _new_staged(s) as staged:
        for a, b in zip(src.data_files(), staged.data_files()):
            shutil.copytree(a, b) if a.is_dir() else shutil.copy2(a, b)
    return staged


# ----------------------------------------------------------------------------- reuse


def build_key(staged: VersionLayout, config: IndexConfig, code: str) -> str:
    """What decides IDs and retriever: embeddings, captions, configs and code version."""
    return config_hash(
        {
            "embeddings": embeddings_digest(staged),
            "captions": sha256_file(staged.captions),
            "config": config_hash(
                {
                    "ids": config.ids,
                    "retriever": config.retriever,
                    "train": config.train,
                    "ablations": config.ablations,
                }
            ),
            "code": code,
        }
    )


def embeddings_digest(v: VersionLayout) -> str:
    """sha256 over (item_id, embedding bytes) in item_id order: the same for the same
    embeddings however they are split into parts."""
    ids, _, x = version_embeddings(v)
    return rows_digest(ids, x)


def rows_digest(item_ids, x) -> str:
    """sha256 over (item_id, embedding bytes), in the given order."""
    h = hashlib.sha256()
    for item_id, row in zip(item_ids, x):
        h.update(item_id.encode())
        h.update(row.tobytes())
    return h.hexdigest()


def reuse_published(store: str, staged: VersionLayout, config: IndexConfig) -> dict | None:
    """If a published version was built from exactly the same inputs, link its IDs, codebooks,
    retriever and eval into the staged version (an unchanged nightly re-index is then cheap)
    and return its ID report; otherwise None."""
    s = open_store(store)
    key = build_key(staged, config, code_version())
    staged.build_key.write_text(key)
    for v in reversed(s.versions()):
        src = s.version(v)
        if src.build_key.exists() and src.build_key.read_text() == key:
            for a, b in zip(src.build_outputs(), staged.build_outputs()):
                _link_tree(a, b)
            staged.reused_from.write_text(v)
            return s.manifest(v)["ids"]
    return None


def _link_tree(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dst))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ----------------------------------------------------------------------------- removals


@dataclass(frozen=True)
class Removals:
    """Items of LATEST that a re-index would drop: their files vanished or their source
    is gone."""

    items: list[dict]  # {"item_id", "source_id", "path", "location"} of the ok items
    missing_sources: list[str]  # sources whose folder is not reachable


def plan_removals(
    store: str, found: Discovery, sources: list[Source], missing: list[Source]
) -> Removals:
    """LATEST's ok items that ``found`` lacks. LATEST is verified first: its rows are
    compared with the folders, and damaged bytes there are a damaged store (exit 3), never
    files that vanished."""
    from ace_index.storage.store.verify import verify_version

    s = open_store(store)
    if s.latest() is None:
        return Removals([], [m.source_id for m in missing])
    verify_version(store, s.latest())
    where = {src.source_id: src for src in sources}
    present = {f.item_id for f in found.files}
    gone = []
    for r in read_items_table(s.version().items).to_pylist():
        if r["status"] == "ok" and r["item_id"] not in present:
            src = where.get(r["source_id"])
            location = src.locate(r["path"]) if src else None
            gone.append(
                {k: r[k] for k in ("item_id", "source_id", "path")} | {"location": location}
            )
    return Removals(gone, [m.source_id for m in missing])


def check_removals(removals: Removals, max_remove: int | None, store: str | None = None) -> None:
    """Refuse (StoreError, before any expensive work) a re-index that would remove more than
    ``max_remove`` items; None allows any number. The one line names the first vanished files
    and the exact command (and deployment parameter) that allows it."""
    n = len(removals.items)
    if max_remove is None or n <= max_remove:
        return
    names = ", ".join(f"{r['source_id'] or '?'}:{r['path']}" for r in removals.items[:5]) + (
        f" and {n - 5} more" if n > 5 else ""
    )
    unreachable = (
        f"; source(s) not reachable: {', '.join(removals.missing_sources)}"
        if removals.missing_sources
        else ""
    )
    command = f"ace index{f' --store {store}' if store else ''} --max-remove {n}"
    raise StoreError(
        f"re-index would remove {n} indexed item(s) whose files vanished ({names}){unreachable}; "
        f"restore them, or allow it: `{command}` (a deployment: its parameter max_remove: {n}; "
        "--allow-remove: any number)"
    )
