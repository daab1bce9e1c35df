"""Prefect tasks that build and publish a version: thin wrappers over storage and ace_core.

Only I/O tasks retry, and only on transient OS errors. What travels between tasks is a path,
a version name, a typed config or a small dict; large data stays on disk.
"""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import replace

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run

from ace_core.config_io import config_hash
from ace_core.ids.semantic_ids import fit_semantic_ids
from ace_core.index_config import IndexConfig
from ace_core.retrieval.ablations import run_ablations
from ace_core.retrieval.fit import fit_retrieval
from ace_core.retrieval.text_encoder import default_encoder_path
from storage.build import staging
from storage.build.publish import publish_version as publish
from storage.formats.codebooks import load_indexer, save_indexer
from storage.formats.retriever import load_retriever_state, save_retriever
from storage.formats.semantic_id_table import read_semantic_ids, write_semantic_ids
from storage.formats.shards import read_encoders
from storage.formats.text_features import feature_source
from storage.formats.version_data import failed_items, training_data, version_embeddings
from storage.store import Store
from storage.store.layout import VersionLayout
from storage.store.verify import verify_version
from tasks._progress import run_logger, stage, text_progress, training_progress
from tasks.fusion_fit import VersionItems, fit_fusion_weights

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
    staging.check_removals(removals, max_remove)


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


@task(name="same-as-latest")
def same_as_latest(store: str, staged: str) -> bool:
    """A staged rebuild that reuses LATEST's build and holds exactly its items (same files,
    sources, paths and failures): publishing it would change nothing."""
    return staging.same_as_latest(Store(store), VersionLayout(staged))


@task(name="reuse-published")
def reuse_published(store: str, staged: str, config: IndexConfig) -> dict | None:
    return staging.reuse_published(store, VersionLayout(staged), config)


@task(name="fit-semantic-ids")
def fit_ids(staged: str, config: IndexConfig) -> dict:
    return fit_version_ids(staged, config)


def fit_version_ids(staged: str, config: IndexConfig) -> dict:
    """New codebooks and IDs for a staged version's embeddings."""
    v = VersionLayout(staged)
    ids, _, x = version_embeddings(v)
    indexer, sids = fit_semantic_ids(ids, x, config.ids)
    save_indexer(indexer, v.codebooks)
    write_semantic_ids(sids, v.semantic_ids)
    ids_fitted(indexer.report)
    return indexer.report


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
    v, p = VersionLayout(staged), Store(store).version(parent)
    shutil.copytree(p.codebooks, v.codebooks)
    indexer = load_indexer(v.codebooks)
    ids, _, x = version_embeddings(v)
    merged, report = indexer.extend(read_semantic_ids(p.semantic_ids), ids, x)
    write_semantic_ids(merged, v.semantic_ids)
    ids_fitted(report)
    return {**report, "id_policy": {"kept_from": parent, "drift": None}}


@task(name="train-retriever")
def train_retriever(
    store: str, staged: str, config: IndexConfig, init_from: str | None = None
) -> dict:
    """Train (or fine-tune from ``init_from``, a retriever folder) and evaluate; writes
    retriever/ and eval.json; returns the eval record."""
    v, data = VersionLayout(staged), training_data(VersionLayout(staged))
    init = load_retriever_state(init_from) if init_from else None
    items = VersionItems.read(store, v, config, data.item_ids)
    key = f"ace-{Store(store).key}"
    encoder_path = config.retriever.encoder_path or default_encoder_path()
    n = len(data.item_ids)
    with text_progress(f"{key}-features") as on_texts, training_progress(key, n) as progress:
        fit = fit_retrieval(
            data.item_ids,
            data.embeddings,
            data.sids,
            data.indexer,
            data.captions,
            config=config.retriever,
            train=config.train,
            ingest=config.ingest,
            init=init,
            progress=progress.epoch,
            on_step=progress.step,
            features=feature_source(Store(store).staging_dir, encoder_path, on_texts),
            zero_shot=items.zero_shot,
            workdir=str(Store(store).staging_dir),
        )
    _training_ended(fit.generative_report)
    save_retriever(fit.model, v.retriever, encoder_path)
    record = fit.eval_record()
    record["fusion"] = fit_fusion_weights(items, config, fit, bool(data.captions))
    if config.ablations:
        record["ablations"] = run_ablations(data, config)
    v.eval.write_text(json.dumps(record, indent=2))
    _warn_if_no_training_captions(record, data.captions)
    g = record.get("generative") or {}
    stage(
        "retriever trained: test R@1 %s, R@10 %s (%d test queries)",
        g.get("R@1"),
        g.get("R@10"),
        record["queries"]["test"],
    )
    return record


_ENDED_BECAUSE = {
    "budget": "its budget is spent",
    "flattened": "validation flattened",
    "epochs": "its epochs are done",
}


def _training_ended(r) -> None:
    stage(
        "training ended at step %d of %d: %s (kept: epoch %d of %d)",
        r.steps,
        r.budget_steps,
        _ENDED_BECAUSE[r.stopped],
        r.best_epoch,
        r.epochs,
    )


def _warn_if_no_training_captions(record: dict, captions: dict) -> None:
    """One line when captioned items exist but none trains (every caption held out by the
    splits of captions.jsonl), naming the splits that hold them."""
    if record["queries"]["train"] or not captions:
        return
    splits: dict[str, int] = {}
    for entry in captions.values():
        splits[entry.split or "none"] = splits.get(entry.split or "none", 0) + 1
    held = ", ".join(f"{n} items in {s}" for s, n in sorted(splits.items()))
    run_logger().warning(
        "no caption trains this index (%s): the captions path learns nothing; give the "
        "training files =train (ace import-captions FILE=train)",
        held,
    )


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
        encoders=read_encoders(Store(store).embed_cache_dir(config_hash(config.embed))),
    )
    _artifacts(Store(store).key, manifest)
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
        "failed_items": failed_items(Store(store).version(manifest["version"])),
    }


def with_ablations(config: IndexConfig, ablations: bool) -> IndexConfig:
    return replace(config, ablations=ablations)


def _emit_published(store: str, manifest: dict) -> None:
    s = Store(store)
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


def _artifacts(store_key: str, m: dict) -> None:
    key = f"ace-{store_key}-{m['version']}"
    rows = [
        {"metric": "items", "value": m["counts"]["items"]},
        {"metric": "ok", "value": m["counts"]["ok"]},
        {"metric": "failed", "value": m["counts"]["failed"]},
    ]
    for which in ("generative", "dense"):
        for k, v in (m["eval"].get(which) or {}).items():
            rows.append({"metric": f"{which} {k}", "value": v})
    create_table_artifact(rows, key=key, description=f"ACE index {m['version']}: counts and eval")
    d = m["id_diff"]
    create_markdown_artifact(
        f"# ID diff {m['parent_version'] or '(none)'} -> {m['version']}\n\n"
        f"| added | removed | changed | unchanged |\n|---|---|---|---|\n"
        f"| {d['added']} | {d['removed']} | {d['changed']} | {d['unchanged']} |\n",
        key=f"{key}-diff",
        description="identifier diff against the parent version",
    )
