"""Parquet schemas and I/O for the index store (items, embeddings, semantic IDs).

Every write goes to a temporary file in the same folder and is renamed into place, so a reader
never sees a half-written table.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),  # sha256 of the file's bytes
        ("source_id", pa.string()),  # the store source holding the file (null: older stores)
        ("path", pa.string()),  # relative to that source's location
        ("location", pa.string()),  # absolute location of the file when it was indexed
        ("modality", pa.string()),  # image | audio | video
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),  # one-line reason when failed
        ("bytes", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int32()),
        ("n_frames", pa.int32()),
        ("date", pa.string()),  # ISO 8601: a photo's EXIF date, else the file's mtime (UTC)
        ("date_source", pa.string()),  # exif | file (null: versions built before dates)
    ]
)

SEMANTIC_IDS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("coarse", pa.int32()),
        ("fine", pa.list_(pa.int32())),
        ("suffix", pa.int32()),
        ("sid", pa.string()),  # "c.f1.f2.f3.u"
    ]
)


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("item_id", pa.string()),
            ("modality", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),  # fixed_size_list<float32>[dim]
        ]
    )


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(data, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def items_table(rows: Sequence[dict]) -> pa.Table:
    cols = {name: [r.get(name) for r in rows] for name in ITEMS_SCHEMA.names}
    return pa.Table.from_pydict(cols, schema=ITEMS_SCHEMA)


def conform_items(table: pa.Table) -> pa.Table:
    """An items table in the current schema: tables written before a column existed (items
    without ``source_id``) get it as nulls; columns come in schema order."""
    cols = []
    for field in ITEMS_SCHEMA:
        if field.name in table.column_names:
            cols.append(table.column(field.name).cast(field.type))
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=ITEMS_SCHEMA)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """A Parquet table; a published version's file that does not read is a damaged store
    (exit 3, naming the file), never a raw decoder error."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        if "versions" not in Path(path).parts or isinstance(e, FileNotFoundError):
            raise
        from ace_index.storage.store import DamagedStoreError

        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DamagedStoreError(
            f"{path}: not readable Parquet ({reason}); `ace verify --all` lists the damaged "
            "files and `ace rollback` serves the newest version that verifies"
        ) from None


def save_weights(tensors: dict, path: str | os.PathLike) -> None:
    """safetensors' save_file, its I/O failures as OSError (a full disk is one line with
    its path, exit 2, not a SafetensorError)."""
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path))
    except Exception as e:  # noqa: BLE001 - SafetensorError wraps the OS error in text
        code = re.search(r"(?:os error|code:) (\d+)", str(e))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None


def read_items_table(path: str | os.PathLike) -> pa.Table:
    return conform_items(read_parquet(path))


def embeddings_table(
    item_ids: Sequence[str], modalities: Sequence[str], emb: np.ndarray
) -> pa.Table:
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n, dim = emb.shape if emb.ndim == 2 else (0, 0)
    values = pa.array(emb.reshape(-1), type=pa.float32())
    col = (
        pa.FixedSizeListArray.from_arrays(values, dim)
        if n
        else pa.array([], pa.list_(pa.float32(), dim))
    )
    return pa.Table.from_arrays(
        [pa.array(list(item_ids), pa.string()), pa.array(list(modalities), pa.string()), col],
        schema=embeddings_schema(dim),
    )


def read_embeddings(paths: Iterable[str | os.PathLike]) -> tuple[list[str], list[str], np.ndarray]:
    """Concatenate embedding shards: (item_ids, modalities, float32 (n, d))."""
    ids: list[str] = []
    mods: list[str] = []
    mats: list[np.ndarray] = []
    dim = None
    for p in paths:
        t = read_parquet(p)
        if t.num_rows == 0:
            continue
        col = t.column("embedding").combine_chunks()
        d = col.type.list_size
        if dim is not None and d != dim:
            raise ValueError(f"embedding shards disagree on dimension: {dim} vs {d} in {p}")
        dim = d
        ids.extend(t.column("item_id").to_pylist())
        mods.extend(t.column("modality").to_pylist())
        mats.append(col.flatten().to_numpy(zero_copy_only=False).reshape(-1, d))
    mat = np.concatenate(mats).astype(np.float32) if mats else np.zeros((0, dim or 0), np.float32)
    return ids, mods, mat
