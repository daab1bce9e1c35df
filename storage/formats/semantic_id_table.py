"""semantic_ids.parquet read and written (light: pyarrow and numpy, no torch)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from ace_core.ids.sids import SemanticIDs
from ace_index.storage.formats.tables import SEMANTIC_IDS_SCHEMA, read_parquet, write_table_atomic


def write_semantic_ids(sids: SemanticIDs, path: str | os.PathLike) -> None:
    table = pa.Table.from_pydict(
        {
            "item_id": sids.item_ids,
            "coarse": sids.coarse.astype(np.int32),
            "fine": [row.astype(np.int32).tolist() for row in sids.fine],
            "suffix": sids.suffix.astype(np.int32),
            "sid": sids.sids,
        },
        schema=SEMANTIC_IDS_SCHEMA,
    )
    write_table_atomic(table, path)


def read_semantic_ids(path: str | os.PathLike) -> SemanticIDs:
    t = read_parquet(path)
    fine = t.column("fine").to_pylist()
    levels = len(fine[0]) if fine else 0
    return SemanticIDs(
        t.column("item_id").to_pylist(),
        t.column("coarse").to_numpy().astype(np.int64),
        np.asarray(fine, dtype=np.int64).reshape(len(fine), levels),
        t.column("suffix").to_numpy().astype(np.int64),
    )
