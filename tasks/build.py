"""Prefect tasks that build and publish a version: thin wrappers over storage and ace_core.

Only I/O tasks retry, and only on transient OS errors. What travels between tasks is a path,
a version name, a typed config or a small dict; large data stays on disk.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import replace

from prefect import task
from prefect.events import emit_event
from prefect.runtime import flow_run

from ace_core.index_config import IndexConfig
from ace_core.media.embed_config import embed_cache_key
from ace_index.storage.build import dedupe, fitted_ids, staging
from ace_index.storage.build.publish import publish_version as publish
from ace_index.storage.formats.codebooks import load_indexer
from ace_index.storage.formats.semantic_id_table import read_semantic_ids, write_semantic_ids
from ace_index.storage.formats.shards import read_encoders
from ace_index.storage.formats.version_data import failed_items, version_embeddings
from ace_index.storage.store import open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.verify import verify_version
from ace_index.tasks._progress import stage
from ace_index.tasks.removals import refuse_removals
from ace_index.tasks.run_summary import publish_artifacts

TRANSIENT = {errno.EAGAIN, errno.EBUSY, errno.EIO, errno.ENOSPC, errno.ETIMEDOUT, errno.ESTALE}


def retry_on_transient_io(task, task_run, state) -> bool:
    """Retry condition: only OS errors that a second try can fix."""
    try:
        state.result()
    except OSError as e:
        return e.errno in TRANSIENT
    except Exception:  # noqa: BLE001 - anything else is not transient
        return False
    return False


IO_RETRIES = dict(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_on_transient_io)


@task(name="verified-version")
def verified_latest(store: str, version: str | None = None) -> str:
    """The version (LATEST by default) after checking its files against its manifest."""
    return verify_version(store, version)["version"]


@task(name="check-removals")
def check_removals(removals: staging.Removals, max_remove: int | None) -> None:
    refuse_removals(removals, max_remove)  # names the store; an event in a deployment


@task(name="embedding-base")
def embedding_base(store: str, config: IndexConfig) -> str | None:
    return staging.embedding_base(store, config.embed)


@task(name="stage-rebuild", **IO_RETRIES)
def stage_rebuild(
    store: str, discovery_path: str, shard_outputs: list[dict], base: str | None
) -> str:
    return str(staging.stage_rebuild(store, discovery_path, shard_outputs, base))


@task(name="stage-ingest", **IO_RETRIES)
def stage_ingest(store: str, discovery_path: str, shard_outputs: list[dict], parent: str) -> str:
    return str(staging.stage_ingest(store, discovery_path, shard_outputs, parent))


@task(name="stage-copy", **IO_RETRIES)
def stage_copy(store: str, version: str) -> str:
    return str(staging.stage_copy(store, version))


@task(name="equal-published")
def equal_published(store: str, staged: str) -> str | None:
    """The published version (LATEST first, then any older one) whose build the staged
    rebuild reuses and whose items it holds exactly (same files, sources, paths, failures):
    publishing it would add a copy of that version (storage/build/dedupe.py)."""
    return dedupe.equal_published(open_store(store), VersionLayout(staged))


@task(name="reuse-published")
def reuse_published(store: str, staged: str, config: IndexConfig) -> dict | None:
    return staging.reuse_published(store, VersionLayout(staged), config)


@task(name="fit-semantic-ids")
def fit_ids(staged: str, store: str, config: IndexConfig) -> dict:
    return fit_version_ids(staged, store, config)


def fit_version_ids(staged: str, store: str, config: IndexConfig) -> dict:
    """New codebooks and IDs for a staged version's embeddings, or the store's kept fit of
    the same embeddings and settings (a killed build's: storage/build/fitted_ids.py)."""
    v = VersionLayout(staged)
    ids, _, x = version_embeddings(v)
    kept = open_store(store).staging_dir
    report, reused = fitted_ids.fit_or_reuse(kept, v, ids, x, config.ids)
    if reused:
        stage("IDs reused from an earlier run's fit of the same embeddings and settings")
    ids_fitted(report)
    return report


def ids_fitted(r: dict) -> None:
    stage(
        "IDs fitted: %d items, k=%d, %dx%d codes, collision rate %s, rel. error %s",
        r["n_items"],
        r["k"],
        r["levels"],
        r["codebook_size"],
        r["collision_rate"],
        r.get("rel_recon_error"),
    )


@task(name="assign-semantic-ids")
def assign_ids(staged: str, store: str, parent: str) -> dict:
    """Frozen codebooks of the parent: its IDs unchanged, new items assigned."""
    v, p = VersionLayout(staged), open_store(store).version(parent)
    shutil.copytree(p.codebooks, v.codebooks)
    indexer = load_indexer(v.codebooks)
    ids, _, x = version_embeddings(v)
    merged, report = indexer.extend(read_semantic_ids(p.semantic_ids), ids, x)
    write_semantic_ids(merged, v.semantic_ids)
    ids_fitted(report)
    return {**report, "id_policy": {"kept_from": parent, "drift": None}}


@task(name="publish-version", **IO_RETRIES)
def publish_version(
    store: str,
    staged: str,
    operation: str,
    expected_parent: str | None,
    config: IndexConfig,
    ids_report: dict,
) -> dict:
    run_id = flow_run.get_id()
    manifest = publish(
        store,
        VersionLayout(staged),
        operation=operation,
        expected_parent=expected_parent,
        config=config,
        ids_report=ids_report,
        flow_run_id=str(run_id) if run_id else None,
        encoders=read_encoders(open_store(store).embed_cache_dir(embed_cache_key(config.embed))),
    )
    publish_artifacts(store, manifest)
    _emit_published(store, manifest)
    stage(
        "published %s (%s, parent %s)",
        manifest["version"],
        operation,
        manifest["parent_version"] or "-",
    )
    keys = ("version", "parent_version", "operation", "counts", "id_diff", "eval", "ids")
    return {
        **{k: manifest[k] for k in keys},
        "reused_from": manifest["reused_from"],
        "failed_items": failed_items(open_store(store).version(manifest["version"])),
    }


def with_ablations(config: IndexConfig, ablations: bool) -> IndexConfig:
    return replace(config, ablations=ablations)


def _emit_published(store: str, manifest: dict) -> None:
    s = open_store(store)
    emit_event(
        event="ace.version.published",
        resource={
            "prefect.resource.id": f"ace.version.{s.key}.{manifest['version']}",
            "ace.store": str(s.root.resolve()),
            "ace.operation": manifest["operation"],
        },
        payload={
            "version": manifest["version"],
            "operation": manifest["operation"],
            "parent_version": manifest["parent_version"],
            "store": str(s.root.resolve()),
        },
    )
