"""The product flows: full re-index, incremental ingest, retraining, audit.

Each flow reads top to bottom as task calls; tasks pass paths, typed configs and small dicts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import flow, task

from ace_core.config_check import check_config
from ace_core.cpu_share import flush_denormals
from ace_core.index_config import IndexConfig
from ace_index.flows.embed import ShardRunner, embed_on
from ace_index.flows.outcomes import (
    dropped_calibrations,
    lifted,
    pinned,
    publish_evaluated,
    report,
    retrain_base,
    unchanged,
)
from ace_index.flows.run_policy import run_options
from ace_index.flows.store_queue import queued_behind_other_builds
from ace_index.storage.build import audit as store_audit
from ace_index.storage.formats.manifest import recorded_config, version_config
from ace_index.storage.store import open_store
from ace_index.tasks import build as t
from ace_index.tasks import train as trained
from ace_index.tasks.embed import discover_ingest_folder, discover_sources
from ace_index.tasks.source_folders import plan_folder, sources_to_index
from ace_index.tasks.stable_ids import keep_or_fit_ids


@contextmanager
def building(store: str, what: str) -> Iterator[None]:
    """One build per store at a time: queued behind builds of the store on the same Prefect
    API (a deployment's nightly run behind an ingest), refused at once when another process
    holds the store's build lock; staged versions of killed runs cleaned first."""
    s = open_store(store)
    with queued_behind_other_builds(store), s.build_lock(what):
        s.clean_staging()
        yield


@contextmanager
def discarded_unless_published(store: str, staged: str) -> Iterator[None]:
    """A staged version that fails before it is published is removed (disk, not data)."""
    try:
        yield
    finally:
        open_store(store).discard_staged(staged)
        dropped_calibrations(store, staged)  # those fitted while scoring it, if unpublished


@flow(name="index-corpus", **run_options("index"))
def index_corpus(
    corpus: str | None = None,
    store: str = "./ace-store",
    config: IndexConfig | None = None,
    max_remove: int | None = 0,
    runner: ShardRunner | None = None,
    refit: bool = False,
    explicit: bool = False,
) -> dict:
    """Full re-index of every source of the store (``corpus`` is added as a source when new):
    embed (shard cache), fit IDs, train, evaluate, validate, publish. A run that would remove
    more than ``max_remove`` indexed items (None: any number) stops before embedding. Shards
    are embedded on ``runner`` (default: this process). LATEST's IDs are kept for every item
    still present unless ``refit`` (or drift, or other settings) says otherwise; a re-index
    that changes nothing publishes nothing. While a rollback pins LATEST, a run no person
    started (``explicit`` False: the nightly schedule) publishes nothing; an explicit one lifts
    the pin."""
    started = time.perf_counter()
    flush_denormals()  # before this run's thread pools exist (training's speed)
    if not explicit and (pin := open_store(store).pin()) is not None:
        return pinned(pin, "ace index")  # before the configuration's lines: one line
    cfg = config or _recorded_or_default(store)
    check_config(cfg)  # a deployment's parameters too: before the lock and any work
    _say_encoders(cfg)
    with building(store, "ace index"):
        pin = open_store(store).pin()  # stable from here: every rollback takes this lock
        if pin is not None and not explicit:
            return pinned(pin, "ace index")
        sources = sources_to_index(store, corpus)
        discovery, removals = discover_sources(store, sources)
        t.check_removals(removals, max_remove)
        base = t.embedding_base(store, cfg)  # LATEST (verified), when its embeddings fit
        shards = embed_on(runner)(
            discovery, store, cfg.embed, exclude_version=base, exclude_failed=False
        )
        staged = t.stage_rebuild(store, discovery, shards, base)
        with discarded_unless_published(store, staged):
            # same inputs as a publish: its outputs (not with --refit: new IDs are asked for)
            ids_report = None if refit else t.reuse_published(store, staged, cfg)
            if ids_report is None:
                ids_report = keep_or_fit_ids(staged, store, cfg, refit)
                trained.train_retriever(store, staged, cfg)
            elif (equal := t.equal_published(store, staged)) is not None:
                return unchanged(store, started, shards, pin, equal)  # LATEST or an older one
            published, served = publish_evaluated(
                store, staged, cfg, "full_rebuild", None, ids_report
            )
    return lifted(pin, report(published, shards, started, served, removed=removals.items))


@flow(name="ingest-batch", **run_options("ingest"))
def ingest_batch(
    corpus: str,
    store: str = "./ace-store",
    runner: ShardRunner | None = None,
    explicit: bool = False,
) -> dict:
    """Incremental append on top of LATEST with its frozen codebooks and config; the folder
    becomes a source (or its files join the source that holds it). A folder with nothing new
    publishes nothing, nor does a run no person started (``explicit`` False) while a rollback
    pins LATEST; an explicit one lifts the pin."""
    started = time.perf_counter()
    flush_denormals()  # before this run's thread pools exist (training's speed)
    with building(store, "ace ingest"):
        pin = open_store(store).pin()  # stable from here: every rollback takes this lock
        if pin is not None and not explicit:
            return pinned(pin, "ace ingest")
        parent = t.verified_latest(store)
        cfg = version_config(store, parent)
        match = plan_folder(store, corpus)
        discovery = discover_ingest_folder(store, match, corpus)
        shards = embed_on(runner)(discovery, store, cfg.embed, exclude_version=parent)
        if not any(o["ok"] + o["failed"] for o in shards):
            return unchanged(store, started, pin=pin)
        staged = t.stage_ingest(store, discovery, shards, parent)
        with discarded_unless_published(store, staged):
            ids_report = t.assign_ids(staged, store, parent)
            parent_weights = str(open_store(store).version(parent).retriever)
            trained.train_retriever(store, staged, cfg, parent_weights)
            published, served = publish_evaluated(
                store, staged, cfg, "incremental_append", parent, ids_report
            )
    return lifted(pin, report(published, shards, started, served))


@flow(name="train-retriever", **run_options("retrain"))
def train_retriever(
    store: str, version: str | None = None, ablations: bool = False, explicit: bool = False
) -> dict:
    """Retrain the retriever of a version (same items and IDs) and publish it as a new
    version (operation ``retrain``); nothing while a rollback pins LATEST, unless a person
    started the run (``explicit``: it lifts the pin; the trigger after an ingest is not)."""
    started = time.perf_counter()
    flush_denormals()  # before this run's thread pools exist (training's speed)
    with building(store, "ace retrain"):
        pin = open_store(store).pin()  # stable from here: every rollback takes this lock
        if pin is not None and not explicit:
            return pinned(pin, "retrain")
        version, skipped = retrain_base(store, version, explicit)  # a newer build covers it?
        if skipped is not None:
            return skipped
        base = t.verified_latest(store, version)
        cfg = t.with_ablations(version_config(store, base), ablations)
        staged = t.stage_copy(store, base)
        with discarded_unless_published(store, staged):
            trained.train_retriever(store, staged, cfg)
            ids = open_store(store).manifest(base)["ids"]
            latest = open_store(store).latest()
            published, served = publish_evaluated(store, staged, cfg, "retrain", latest, ids)
    return lifted(pin, report(published, [], started, served))


@task(name="audit-diff")
def audit_diff(store: str, from_version: str | None, to_version: str | None) -> dict:
    return store_audit.audit(store, from_version, to_version)


@flow(name="audit-versions", **run_options("audit"))
def audit_versions(
    store: str, from_version: str | None = None, to_version: str | None = None
) -> dict:
    return audit_diff(store, from_version, to_version)


def _recorded_or_default(store: str) -> IndexConfig:
    """A deployment's re-index without a config: LATEST's recorded one (never the defaults
    over a store built with other encoders), the defaults for a new store."""
    from ace_index.tasks._progress import stage

    recorded = recorded_config(store)
    if recorded is None:
        return IndexConfig()
    stage("configuration: the one %s was built with", recorded[1])
    return recorded[0]


def _say_encoders(cfg: IndexConfig) -> None:
    from ace_index.tasks._progress import stage

    image, audio = cfg.embed.image, cfg.embed.audio
    stage(
        "encoders: image %s (%s), audio %s (%s)",
        image.model,
        image.pretrained,
        audio.model,
        audio.checkpoint,
    )
