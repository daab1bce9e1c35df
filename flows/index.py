"""The product flows: full re-index, incremental ingest, retraining, audit.

Each flow reads top to bottom as task calls; tasks pass paths and small dicts only.
"""

from __future__ import annotations

import time

from prefect import flow, task

from ace_core.config import from_dict, to_dict
from ace_core.settings import IndexConfig
from flows.embed import run_embedding
from storage.codebooks import read_semantic_ids
from storage.store import Store, StoreError
from storage.versions import id_diff
from tasks import index as t


def _config(config: dict | None) -> dict:
    return to_dict(from_dict(IndexConfig, config or {}))


@flow(name="index-corpus")
def index_corpus(corpus: str, store: str, config: dict | None = None) -> dict:
    """Full re-index: embed (shard cache), fit IDs, train, evaluate, validate, publish."""
    started = time.perf_counter()
    cfg = _config(config)
    discovery, shards = run_embedding(corpus, store, from_dict(IndexConfig, cfg).embed)
    staged = t.stage_version(store, discovery, shards)
    ids_report = t.reuse_published(store, staged, cfg)  # same inputs as a published version
    if ids_report is None:
        ids_report = t.fit_ids(staged, cfg)
        t.train_retriever(staged, cfg)
    published = t.publish_version(store, staged, "full_rebuild", None, cfg, ids_report)
    return _report(published, shards, started)


@flow(name="ingest-batch")
def ingest_batch(corpus: str, store: str) -> dict:
    """Incremental append on top of LATEST with its frozen codebooks and config."""
    started = time.perf_counter()
    s = Store(store)
    parent = s.resolve(None)
    cfg = s.manifest(parent)["config"]
    discovery, shards = run_embedding(
        corpus, store, from_dict(IndexConfig, cfg).embed, exclude_version=parent
    )
    staged = t.stage_version(store, discovery, shards, parent)
    ids_report = t.assign_ids(staged, store, parent)
    t.train_retriever(staged, cfg, str(s.version_dir(parent) / "retriever"))
    published = t.publish_version(store, staged, "incremental_append", parent, cfg, ids_report)
    return _report(published, shards, started)


@flow(name="train-retriever")
def train_retriever(store: str, version: str | None = None, ablations: bool = False) -> dict:
    """Retrain the retriever of a version (same items and IDs) and publish it as a new
    version (operation ``retrain``)."""
    started = time.perf_counter()
    s = Store(store)
    base = s.resolve(version)
    cfg = {**s.manifest(base)["config"], "ablations": ablations}
    staged = t.stage_copy(store, base)
    t.train_retriever(staged, cfg)
    published = t.publish_version(
        store, staged, "retrain", s.latest(), cfg, s.manifest(base)["ids"]
    )
    return _report(published, [], started)


@task(name="audit-diff")
def audit_diff(store: str, from_version: str | None, to_version: str | None) -> dict:
    return audit(store, from_version, to_version)


@flow(name="audit-versions")
def audit_versions(
    store: str, from_version: str | None = None, to_version: str | None = None
) -> dict:
    return audit_diff(store, from_version, to_version)


def audit(store: str, from_version: str | None = None, to_version: str | None = None) -> dict:
    """Identifier diff between two versions (default: LATEST against its parent)."""
    s = Store(store)
    to_v = s.resolve(to_version)
    from_v = from_version or s.manifest(to_v).get("parent_version")
    if from_v is None:
        raise StoreError(f"{to_v} has no parent version; give --from")
    from_v = s.resolve(from_v)
    old = read_semantic_ids(s.version_dir(from_v) / "semantic_ids.parquet")
    new = read_semantic_ids(s.version_dir(to_v) / "semantic_ids.parquet")
    return {"from": from_v, "to": to_v, **id_diff(old, new, detail=True)}


def _report(published: dict, shards: list[dict], started: float) -> dict:
    return {
        "version": published["version"],
        "parent_version": published["parent_version"],
        "operation": published["operation"],
        "items": published["counts"],
        "ids": published["ids"],
        "eval": {"version": published["version"], **published["eval"]},
        "reused_from": published["reused_from"],
        "id_diff": published["id_diff"],
        "shards_computed": sum(o["computed"] for o in shards),
        "seconds": round(time.perf_counter() - started, 2),
    }
