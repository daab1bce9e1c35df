"""Embedding shards: the unit of work and of caching.

A shard is a fixed group of media files (by sorted item_id). Its key hashes the encoder
configuration and the item_ids it holds, so an unchanged corpus maps to the same shard keys and
a finished shard is never recomputed. Only this module writes embedding shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ace_core.media.discovery import MediaFile
from ace_core.media.encoders import to_common_dim
from ace_core.media.pipeline import EmbedResult
from ace_index.storage.formats.tables import embeddings_table, items_table, write_table_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSpec:
    key: str  # sha256(config hash + item_ids), hex
    spec_path: str  # JSON file listing the shard's MediaFile records

    @property
    def name(self) -> str:
        return f"shard-{self.key[:16]}"


@dataclass(frozen=True)
class ShardOutput:
    key: str
    items_path: str
    embeddings_path: str
    ok: int
    failed: int
    computed: bool  # False when the shard was already on disk


def plan_shards(
    files: Sequence[MediaFile], shard_size: int, config_hash: str, spec_dir: Path
) -> list[ShardSpec]:
    """Split files (sorted by item_id) into shards and write one spec file per shard."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(files, key=lambda f: f.item_id)
    specs = []
    for start in range(0, len(ordered), shard_size):
        chunk = ordered[start : start + shard_size]
        h = hashlib.sha256(config_hash.encode())
        for f in chunk:
            h.update(f.item_id.encode())
        key = h.hexdigest()
        spec_path = spec_dir / f"shard-{key[:16]}.json"
        # rewritten every time: the same bytes may have moved since (the key is content only)
        tmp = spec_path.with_suffix(f".json.tmp-{os.getpid()}")
        tmp.write_text(json.dumps([asdict(f) for f in chunk]))
        tmp.replace(spec_path)
        specs.append(ShardSpec(key, str(spec_path)))
    return specs


def load_shard_files(spec: ShardSpec) -> list[MediaFile]:
    return [MediaFile(**d) for d in json.loads(Path(spec.spec_path).read_text())]


def shard_paths(cache_dir: Path, spec: ShardSpec) -> tuple[Path, Path]:
    return cache_dir / f"{spec.name}.items.parquet", cache_dir / f"{spec.name}.emb.parquet"


def finished_shard(cache_dir: Path, spec: ShardSpec) -> ShardOutput | None:
    """The shard's output if both tables are already on disk (the embeddings are written last)."""
    import pyarrow.parquet as pq

    items_path, emb_path = shard_paths(cache_dir, spec)
    if not (items_path.exists() and emb_path.exists()):
        return None
    status = pq.read_table(items_path, columns=["status"]).column("status").to_pylist()
    ok = sum(s == "ok" for s in status)
    return ShardOutput(spec.key, str(items_path), str(emb_path), ok, len(status) - ok, False)


def write_embed_shard(
    results: Iterable[EmbedResult], cache_dir: Path, spec: ShardSpec, dim: int
) -> ShardOutput:
    """Drain ``results`` into the shard's items and embeddings tables (embeddings padded to
    the store's common ``dim``)."""
    items_path, emb_path = shard_paths(cache_dir, spec)
    rows, ids, mods, embs = [], [], [], []
    for r in results:
        f = r.file
        rows.append(
            {
                "item_id": f.item_id,
                "source_id": f.source_id,
                "path": f.path,
                "modality": f.modality,
                "status": "ok" if r.error is None else "failed",
                "error": r.error,
                "bytes": f.bytes,
                **{
                    k: r.meta.get(k)
                    for k in ("width", "height", "duration_s", "sample_rate", "n_frames")
                },
            }
        )
        if r.error is None:
            ids.append(f.item_id)
            mods.append(f.modality)
            embs.append(to_common_dim(r.embedding[None, :], dim)[0])
    rows.sort(key=lambda r: r["item_id"])
    order = np.argsort(ids, kind="stable") if ids else np.zeros(0, np.int64)
    mat = np.stack([embs[i] for i in order]) if embs else np.zeros((0, dim), np.float32)
    write_table_atomic(items_table(rows), items_path)
    write_table_atomic(
        embeddings_table([ids[i] for i in order], [mods[i] for i in order], mat), emb_path
    )
    return ShardOutput(
        spec.key, str(items_path), str(emb_path), len(ids), len(rows) - len(ids), True
    )


def read_shard_items(outputs: Sequence[dict]):
    """All items rows of the given shard outputs as one pyarrow Table (sorted by item_id)."""
    import pyarrow as pa

    from ace_index.storage.formats.tables import ITEMS_SCHEMA, read_items_table

    tables = [read_items_table(o["items_path"]) for o in outputs]
    if not tables:
        return ITEMS_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by("item_id")


def with_current_paths(items, files: Sequence[MediaFile]):
    """Items rows with ``source_id`` and ``path`` taken from the current discovery (a cached
    shard keeps where the bytes were when they were embedded)."""
    import pyarrow as pa

    where = {f.item_id: (f.source_id, f.path) for f in files}
    ids = items["item_id"].to_pylist()
    old = list(zip(items["source_id"].to_pylist(), items["path"].to_pylist()))
    current = [where.get(i, o) for i, o in zip(ids, old)]
    for name, col in (("source_id", 0), ("path", 1)):
        idx = items.schema.get_field_index(name)
        items = items.set_column(idx, name, pa.array([c[col] for c in current], pa.string()))
    return items


def summarize_items(items) -> dict:
    """Counts by status and by modality (ok items only) of an items table."""
    status = items.column("status").to_pylist()
    modality = items.column("modality").to_pylist()
    by_modality: dict[str, int] = {}
    for s, m in zip(status, modality):
        if s == "ok":
            by_modality[m] = by_modality.get(m, 0) + 1
    ok = sum(s == "ok" for s in status)
    return {
        "items": len(status),
        "ok": ok,
        "failed": len(status) - ok,
        "by_modality": dict(sorted(by_modality.items())),
    }


def record_encoders(cache_dir: Path, encoders: dict) -> None:
    """Merge {modality: name, weights_source, weights_sha256, text_sha256, dim} into
    encoders.json."""
    path = cache_dir / "encoders.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    for modality, enc in encoders.items():
        known[modality] = {
            "name": enc.name,
            "weights_source": enc.weights_source,
            "weights_sha256": enc.weights_sha256,
            "text_sha256": enc.text_sha256,  # the zero-shot query tower
            "dim": enc.dim,
        }
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True))
    tmp.replace(path)


def towers_are_trained(encoders: dict) -> bool:
    """True when every recorded encoder has a text tower from real (not random) weights."""
    records = [r for r in encoders.values() if r]
    return bool(records) and all(
        r.get("text_sha256") and r.get("weights_source") != "random-init" for r in records
    )


def read_encoders(cache_dir: Path) -> dict:
    """The encoders that made a shard cache's embeddings (written by record_encoders)."""
    path = cache_dir / "encoders.json"
    return json.loads(path.read_text()) if path.exists() else {}
