"""Validating a staged version, writing its manifest, and the atomic publish.

Modelled on Iceberg snapshots: a version is validated (row counts, unique IDs, every ID
resolvable in the trie, eval present), gets a manifest listing every file with its sha256,
is renamed into versions/ and only then does LATEST move (storage/store/store.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ace_core.config_io import config_hash, to_dict
from ace_core.index_config import IndexConfig
from ace_core.media.discovery import sha256_file
from ace_core.retrieval.constrained_generation import Trie
from ace_index.storage.build.audit import id_diff
from ace_index.storage.formats.semantic_id_table import read_semantic_ids
from ace_index.storage.formats.version_data import (
    ok_item_ids,
    read_version_items,
    version_embeddings,
)
from ace_index.storage.store import IndexStore, StoreError, open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.sources import (
    Source,
    check_planned_sources,
    planned_sources,
    read_sources,
    settle_sources,
    sources_holding,
)


class ValidationError(Exception):
    """A staged version that must not be published."""


def validate_version(v: VersionLayout) -> dict:
    """Row counts, unique IDs, every ID resolvable in the trie, eval present."""
    items = read_version_items(v)
    ok_ids = ok_item_ids(items)
    emb_ids, _, emb = version_embeddings(v)
    if emb_ids != ok_ids:
        raise ValidationError(f"embeddings hold {len(emb_ids)} rows for {len(ok_ids)} ok items")
    bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
    if len(bad):
        raise ValidationError(
            f"{len(bad)} embeddings are not finite (NaN/inf), e.g. item {emb_ids[bad[0]]}"
        )
    if len(set(items["item_id"].to_pylist())) != items.num_rows:
        raise ValidationError("items.parquet has duplicate item_ids")
    sids = read_semantic_ids(v.semantic_ids)
    if sids.item_ids != ok_ids:
        raise ValidationError(f"semantic_ids has {len(sids.item_ids)} rows for {len(ok_ids)} items")
    if len(set(sids.sids)) != len(sids.sids):
        raise ValidationError("semantic IDs are not unique")
    tokens = sids.tokens()
    unresolved = np.flatnonzero(Trie(tokens).items(tokens) != np.arange(len(tokens)))
    if len(unresolved):
        raise ValidationError(f"{len(unresolved)} IDs do not resolve in the trie")
    if not v.eval.exists():
        raise ValidationError("eval.json missing")
    if not v.retriever_weights.exists():
        raise ValidationError("retriever weights missing")
    return {"items": items.num_rows, "ok": len(ok_ids), "ids": len(sids.sids)}


def publish_version(
    store: str,
    staged: VersionLayout,
    *,
    operation: str,
    expected_parent: str | None,
    config: IndexConfig,
    ids_report: dict,
    flow_run_id: str | None = None,
    encoders: dict | None = None,
    lock_timeout_s: float = 30.0,
) -> dict:
    """Validate, write the manifest, move into versions/ and replace LATEST (under the lock)."""
    s = open_store(store)
    validate_version(staged)
    walked = planned_sources(staged.root)  # registered once LATEST names this version
    with s.lock(lock_timeout_s):
        settle_sources(s)  # a publish killed after LATEST moved, before registering
        parent = s.latest()
        if operation == "incremental_append" and parent != expected_parent:
            raise StoreError(
                f"LATEST moved from {expected_parent} to {parent} while this ingest "
                f"ran; re-run the ingest on top of {parent}"
            )
        version = s.next_version()
        new = read_semantic_ids(staged.semantic_ids)
        old = read_semantic_ids(s.version(parent).semantic_ids) if parent else None
        manifest = write_manifest(
            staged,
            {
                "version": version,
                "parent_version": parent,
                "operation": operation,
                "reused_from": (
                    staged.reused_from.read_text() if staged.reused_from.exists() else None
                ),
                "flow_run_id": flow_run_id,
                "input_set_hash": input_set_hash(new.item_ids),
                "sources": [asdict(src) for src in _item_sources(s, staged, walked)],
                "encoders": encoders or {},
                "config": to_dict(config),
                "config_hash": config_hash(config),
                "counts": counts(staged, ids_report),
                "ids": ids_report,
                "id_diff": id_diff(old, new),
                "eval": {
                    **eval_summary(ev := json.loads(staged.eval.read_text())),
                    "served": served_summary(staged),  # scored before publishing (issue 43)
                },
                "fusion": ev.get("fusion"),  # the fused path's fitted weights (None: defaults)
            },
        )
        check_planned_sources(read_sources(s), walked)
        s.publish(staged, version)
        settle_sources(s)
    return manifest


def _item_sources(s: IndexStore, staged: VersionLayout, walked: list[Source]) -> list[Source]:
    ids = {i for i in read_version_items(staged)["source_id"].to_pylist() if i is not None}
    known = {src.source_id: src for src in sources_holding(s, ids)}
    known.update({src.source_id: src for src in walked if src.source_id in ids})
    return [known[i] for i in sorted(known)]


def eval_summary(ev: dict) -> dict:
    keys = ("protocol", "queries", "generative", "dense", "ablations", "subsets", "training")
    return {k: ev[k] for k in keys if k in ev}


def served_summary(staged: VersionLayout) -> dict | None:
    """The served path's test metrics the build scored on the staged version (None: not
    scored, no test captions)."""
    if not staged.served_eval.exists():
        return None
    out = json.loads(staged.served_eval.read_text())
    return {"path": out["path"], "queries": out["queries"], **out["served"]}


def code_version() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from ace_core import __version__

    return __version__


def input_set_hash(item_ids: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i in sorted(item_ids):
        h.update(i.encode())
    return h.hexdigest()


def file_list(v: VersionLayout) -> list[dict]:
    out = []
    for p in sorted(v.root.rglob("*")):
        if not p.is_file() or p in (v.manifest, v.manifest_sum) or p.name.startswith("."):
            continue
        entry = {
            "path": p.relative_to(v.root).as_posix(),
            "sha256": sha256_file(p),
            "bytes": p.stat().st_size,
        }
        if p.suffix == ".parquet":
            entry["rows"] = pq.ParquetFile(p).metadata.num_rows
        out.append(entry)
    return out


def counts(v: VersionLayout, ids_report: dict) -> dict:
    items = pq.read_table(v.items, columns=["modality", "status"]).to_pylist()
    by: dict[str, dict[str, int]] = {}
    for r in items:
        by.setdefault(r["modality"], {}).setdefault(r["status"], 0)
        by[r["modality"]][r["status"]] += 1
    return {
        "items": len(items),
        "ok": sum(r["status"] == "ok" for r in items),
        "failed": sum(r["status"] == "failed" for r in items),
        "by_modality": by,
        "collisions": int(
            round(ids_report.get("collision_rate", 0) * ids_report.get("n_items", 0))
        ),
        "utilization": ids_report.get("utilization"),
    }


def write_manifest(v: VersionLayout, fields: dict) -> dict:
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_version": code_version(),
        **fields,
        "files": file_list(v),
    }
    raw = json.dumps(manifest, indent=2, default=str).encode()
    for path, data in ((v.manifest, raw), (v.manifest_sum, _sum_line(raw))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return manifest


def _sum_line(raw: bytes) -> bytes:
    return f"{hashlib.sha256(raw).hexdigest()}  manifest.json\n".encode()
