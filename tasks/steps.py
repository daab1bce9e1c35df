"""The steps of building a version, as plain functions over paths (no Prefect here).

Each step reads what the previous one wrote in the staged version folder and writes its own
files; the Prefect tasks in tasks/index.py wrap them one to one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ace_core.config import config_hash
from ace_core.index_model import FitResult, fit_retrieval
from ace_core.media import sha256_file
from ace_core.semantic_ids import SemanticIDConfig, fit_semantic_ids
from ace_core.settings import IndexConfig
from storage.codebooks import load_indexer, read_semantic_ids, save_indexer, write_semantic_ids
from storage.discovery import load_discovery
from storage.retriever_io import load_retriever, load_retriever_state, save_retriever
from storage.shards import read_items, with_current_paths
from storage.store import Store, StoreError
from storage.versions import (
    counts,
    id_diff,
    input_set_hash,
    read_captions,
    stage_tables,
    validate_version,
    version_embeddings,
    write_manifest,
)

logger = logging.getLogger(__name__)

ABLATIONS = ("no_coarse", "hkmeans", "no_fusion", "random_ids")


def stage_version(
    store: str, discovery_path: str, shard_outputs: list[dict], parent: str | None = None
) -> str:
    """A staged folder with items, embeddings and captions (parent's + new ones when given)."""
    s = Store(store)
    staged = s.new_staging_version()
    found = load_discovery(discovery_path)
    items = with_current_paths(read_items(shard_outputs), {f.item_id: f.path for f in found.files})
    parts = [o["embeddings_path"] for o in shard_outputs]
    captions = dict(found.captions)
    if parent:
        pdir = s.version_dir(parent)
        old = pq.read_table(pdir / "items.parquet")
        items = pa.concat_tables([old, items.cast(old.schema)])
        parts = [str(p) for p in sorted((pdir / "embeddings").glob("part-*.parquet"))] + parts
        old_caps = read_captions(pdir)
        captions = {**{k: v for k, v in captions.items() if k not in old_caps}, **old_caps}
    stage_tables(staged, items, parts, captions)
    return str(staged)


def stage_copy(store: str, version: str) -> str:
    """A staged copy of a version's tables, IDs and codebooks (retrain on the same items)."""
    s = Store(store)
    src, staged = s.version_dir(version), s.new_staging_version()
    for name in ("items.parquet", "captions.parquet", "semantic_ids.parquet"):
        shutil.copy2(src / name, staged / name)
    for folder in ("embeddings", "codebooks"):
        shutil.copytree(src / folder, staged / folder)
    return str(staged)


REUSED = ("semantic_ids.parquet", "codebooks", "retriever", "eval.json")


def build_key(staged: str, config: dict) -> str:
    """What decides IDs and retriever: embeddings, captions, configs and code version."""
    from storage.versions import code_version

    folder = Path(staged)
    parts = sorted(sha256_file(p) for p in (folder / "embeddings").glob("part-*.parquet"))
    return config_hash(
        {
            "embeddings": parts,
            "captions": sha256_file(folder / "captions.parquet"),
            "config": {k: config[k] for k in ("ids", "retriever", "train", "ablations")},
            "code": code_version(),
        }
    )


def reuse_published(store: str, staged: str, config: dict) -> dict | None:
    """If a published version was built from exactly the same inputs, link its IDs, codebooks,
    retriever and eval into the staged version (an unchanged nightly re-index is then cheap)
    and return its ID report; otherwise None."""
    s = Store(store)
    key = build_key(staged, config)
    (Path(staged) / "build_key").write_text(key)
    for v in reversed(s.versions()):
        src = s.version_dir(v)
        if (src / "build_key").exists() and (src / "build_key").read_text() == key:
            for name in REUSED:
                _link_tree(src / name, Path(staged) / name)
            (Path(staged) / "reused_from").write_text(v)
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


def fit_ids(staged: str, config: SemanticIDConfig) -> dict:
    folder = Path(staged)
    ids, _, x = version_embeddings(folder)
    indexer, sids = fit_semantic_ids(ids, x, config)
    save_indexer(indexer, folder / "codebooks")
    write_semantic_ids(sids, folder / "semantic_ids.parquet")
    return indexer.report


def assign_ids(staged: str, store: str, parent: str) -> dict:
    """Frozen codebooks of the parent: its IDs unchanged, new items assigned."""
    folder, pdir = Path(staged), Store(store).version_dir(parent)
    shutil.copytree(pdir / "codebooks", folder / "codebooks")
    indexer = load_indexer(folder / "codebooks")
    old = read_semantic_ids(pdir / "semantic_ids.parquet")
    ids, _, x = version_embeddings(folder)
    known = set(old.item_ids)
    new_rows = [i for i, item in enumerate(ids) if item not in known]
    added = indexer.assign([ids[i] for i in new_rows], x[new_rows], old) if new_rows else None
    merged = old.concat(added) if added is not None else old
    write_semantic_ids(merged, folder / "semantic_ids.parquet")
    report = dict(indexer.report)
    report.update(
        n_items=len(merged.item_ids),
        new_items=len(new_rows),
        collision_rate=round(float((merged.suffix > 0).mean()), 4),
        max_suffix=int(merged.suffix.max(initial=0)),
    )
    return report


def _progress(desc: str, total: int):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, disable=None, leave=False)

    def update(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    return bar, update


def _fit(
    folder: Path,
    cfg: IndexConfig,
    *,
    init_from: str | None = None,
    sids=None,
    indexer=None,
    desc="train retriever",
) -> FitResult:
    ids, _, x = version_embeddings(folder)
    sids = sids if sids is not None else read_semantic_ids(folder / "semantic_ids.parquet")
    indexer = indexer if indexer is not None else load_indexer(folder / "codebooks")
    captions = read_captions(folder)
    train_cfg, init = cfg.train, None
    if init_from:
        train_cfg = replace(
            cfg.train, epochs=cfg.ingest_epochs, eval_every=4, lr=cfg.train.lr * cfg.ingest_lr_scale
        )
        init = load_retriever_state(init_from)
    bar, update = _progress(desc, train_cfg.epochs)
    try:
        return fit_retrieval(
            ids,
            x,
            sids,
            indexer,
            captions,
            config=cfg.retriever,
            train=train_cfg,
            progress=update,
            init=init,
            replay_ratio=cfg.replay_ratio,
        )
    finally:
        bar.close()


def train_retriever(staged: str, config: dict, init_from: str | None = None) -> dict:
    """Train (or fine-tune from ``init_from``, a retriever folder) and evaluate; writes
    retriever/ and eval.json; returns the eval summary."""
    folder = Path(staged)
    cfg = index_config(config)
    fit = _fit(folder, cfg, init_from=init_from)
    save_retriever(
        fit.model, folder / "retriever", cfg.retriever.encoder_path or _default_encoder()
    )
    ev = {
        **fit.eval,
        "training": {
            "epochs": fit.generative_report.epochs,
            "best_epoch": fit.generative_report.best_epoch,
            "seconds": round(fit.generative_report.seconds, 2),
            "seconds_per_epoch": round(fit.generative_report.seconds_per_epoch, 3),
            "peak_memory_mb": round(fit.generative_report.peak_memory_mb, 1),
        },
    }
    if fit.subsets:
        ev["subsets"] = fit.subsets
    if cfg.ablations:
        ev["ablations"] = run_ablations(folder, cfg)
    (folder / "eval.json").write_text(json.dumps(ev, indent=2))
    return ev


def run_ablations(folder: Path, cfg: IndexConfig) -> dict:
    """Test metrics of the four ablations (each trains its own model)."""
    ids, _, x = version_embeddings(folder)
    out = {}
    for name in ABLATIONS:
        if name == "no_fusion":
            fit = _fit(
                folder,
                replace(cfg, retriever=replace(cfg.retriever, fusion=False)),
                desc=f"ablation {name}",
            )
        else:
            mode = {"no_coarse": "no_coarse", "hkmeans": "hkmeans", "random_ids": "random"}[name]
            indexer, sids = fit_semantic_ids(ids, x, replace(cfg.ids, mode=mode))
            fit = _fit(folder, cfg, sids=sids, indexer=indexer, desc=f"ablation {name}")
        out[name] = fit.eval["generative"]
    return out


def _default_encoder() -> str:
    from ace_core.retriever import default_encoder_path

    return default_encoder_path()


def index_config(config: dict | None) -> IndexConfig:
    from ace_core.config import from_dict

    return from_dict(IndexConfig, config or {})


def publish_version(
    store: str,
    staged: str,
    *,
    operation: str,
    expected_parent: str | None,
    config: dict,
    ids_report: dict,
    flow_run_id: str | None,
    encoders: dict,
    lock_timeout_s: float = 30.0,
) -> dict:
    """Validate, write the manifest, move into versions/ and replace LATEST (under the lock)."""
    s = Store(store)
    folder = Path(staged)
    validate_version(folder)
    with s.lock(lock_timeout_s):
        parent = s.latest()
        if operation == "incremental_append" and parent != expected_parent:
            raise StoreError(
                f"LATEST moved from {expected_parent} to {parent} while this ingest "
                f"ran; re-run the ingest on top of {parent}"
            )
        version = s.next_version()
        new = read_semantic_ids(folder / "semantic_ids.parquet")
        old = read_semantic_ids(s.version_dir(parent) / "semantic_ids.parquet") if parent else None
        ev = json.loads((folder / "eval.json").read_text())
        reused = folder / "reused_from"
        manifest = write_manifest(
            folder,
            {
                "version": version,
                "parent_version": parent,
                "operation": operation,
                "reused_from": reused.read_text() if reused.exists() else None,
                "flow_run_id": flow_run_id,
                "input_set_hash": input_set_hash(new.item_ids),
                "encoders": encoders,
                "config": config,
                "config_hash": config_hash(config),
                "counts": counts(folder, ids_report),
                "ids": ids_report,
                "id_diff": id_diff(old, new),
                "eval": _eval_summary(ev),
            },
        )
        s.publish(folder, version)
    return manifest


def _eval_summary(ev: dict) -> dict:
    return {
        k: ev[k]
        for k in ("protocol", "queries", "generative", "dense", "ablations", "subsets", "training")
        if k in ev
    }


def encoders_info(store: str, embed_config: dict) -> dict:
    """Encoders that made the embeddings (written by the embedding shards)."""
    from ace_core.config import from_dict
    from ace_core.pipeline import EmbedConfig

    path = (
        Store(store).embed_cache_dir(config_hash(from_dict(EmbedConfig, embed_config)))
        / "encoders.json"
    )
    return json.loads(path.read_text()) if path.exists() else {}


def load_version_model(store: str, version: str | None = None):
    """(version name, RetrievalModel, items table) for queries."""
    s = Store(store)
    v = s.resolve(version)
    folder = s.version_dir(v)
    if not (folder / "retriever" / "weights.safetensors").exists():
        raise StoreError(f"version {v} has no retriever")
    ids, _, x = version_embeddings(folder)
    sids = read_semantic_ids(folder / "semantic_ids.parquet")
    model = load_retriever(folder / "retriever", ids, x, sids.tokens())
    items = pq.read_table(folder / "items.parquet").to_pylist()
    return v, model, {r["item_id"]: r for r in items}, dict(zip(sids.item_ids, sids.sids))
