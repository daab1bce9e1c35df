"""The product flows: full re-index, incremental ingest, retraining, audit.

Each flow reads top to bottom as task calls; tasks pass paths, typed configs and small dicts.
"""

from __future__ import annotations

import time

from prefect import flow, task

from ace_core.index_config import IndexConfig
from flows.embed import run_embedding
from storage import audit as store_audit
from storage.catalog import version_config
from storage.store import Store
from tasks import build as t
from tasks.embed import discover_ingest_folder, discover_sources
from tasks.sources import register_folder, sources_to_index


@flow(name="index-corpus")
def index_corpus(
    corpus: str | None = None,
    store: str = "./ace-store",
    config: IndexConfig | None = None,
    max_remove: int | None = 0,
) -> dict:
    """Full re-index of every source of the store (``corpus`` is added as a source when new):
    embed (shard cache), fit IDs, train, evaluate, validate, publish. A run that would remove
    more than ``max_remove`` indexed items (None: any number) stops before embedding."""
    started = time.perf_counter()
    cfg = config or IndexConfig()
    sources = sources_to_index(store, corpus)
    discovery, removals = discover_sources(store, sources)
    t.check_removals(removals, max_remove)
    base = t.embedding_base(store, cfg)  # LATEST, when its embeddings can be reused
    shards = run_embedding(discovery, store, cfg.embed, exclude_version=base, exclude_failed=False)
    staged = t.stage_rebuild(store, discovery, shards, base)
    ids_report = t.reuse_published(store, staged, cfg)  # same inputs as a published version
    if ids_report is None:
        ids_report = t.fit_ids(staged, cfg)
        t.train_retriever(staged, cfg)
    published = t.publish_version(store, staged, "full_rebuild", None, cfg, ids_report)
    return _report(published, shards, started, removed=removals.items)


@flow(name="ingest-batch")
def ingest_batch(corpus: str, store: str = "./ace-store") -> dict:
    """Incremental append on top of LATEST with its frozen codebooks and config; the folder
    becomes a source (or its files join the source that holds it)."""
    started = time.perf_counter()
    parent = Store(store).resolve(None)
    cfg = version_config(store, parent)
    match = register_folder(store, corpus)
    discovery = discover_ingest_folder(store, match, corpus)
    shards = run_embedding(discovery, store, cfg.embed, exclude_version=parent)
    staged = t.stage_ingest(store, discovery, shards, parent)
    ids_report = t.assign_ids(staged, store, parent)
    t.train_retriever(staged, cfg, str(Store(store).version(parent).retriever))
    published = t.publish_version(store, staged, "incremental_append", parent, cfg, ids_report)
    return _report(published, shards, started)


@flow(name="train-retriever")
def train_retriever(store: str, version: str | None = None, ablations: bool = False) -> dict:
    """Retrain the retriever of a version (same items and IDs) and publish it as a new
    version (operation ``retrain``)."""
    started = time.perf_counter()
    s = Store(store)
    base = s.resolve(version)
    cfg = t.with_ablations(version_config(store, base), ablations)
    staged = t.stage_copy(store, base)
    t.train_retriever(staged, cfg)
    published = t.publish_version(
        store, staged, "retrain", s.latest(), cfg, s.manifest(base)["ids"]
    )
    return _report(published, [], started)


@task(name="audit-diff")
def audit_diff(store: str, from_version: str | None, to_version: str | None) -> dict:
    return store_audit.audit(store, from_version, to_version)


@flow(name="audit-versions")
def audit_versions(
    store: str, from_version: str | None = None, to_version: str | None = None
) -> dict:
    return audit_diff(store, from_version, to_version)


def _report(published: dict, shards: list[dict], started: float, removed=()) -> dict:
    return {
        "version": published["version"],
        "parent_version": published["parent_version"],
        "operation": published["operation"],
        "items": published["counts"],
        "ids": published["ids"],
        "eval": {"version": published["version"], **published["eval"]},
        "reused_from": published["reused_from"],
        "id_diff": published["id_diff"],
        "removed_items": list(removed),
        "shards_computed": sum(o["computed"] for o in shards),
        "seconds": round(time.perf_counter() - started, 2),
    }
