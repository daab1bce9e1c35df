"""Reading a version's tables: items, embeddings, captions (published or staged)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ace_core.ids.semantic_ids import SemanticIndexer
from ace_core.ids.sids import SemanticIDs
from ace_core.media.discovery import CaptionEntry
from ace_index.storage.formats.codebooks import load_indexer
from ace_index.storage.formats.semantic_id_table import read_semantic_ids
from ace_index.storage.formats.tables import read_embeddings, read_items_table, read_parquet
from ace_index.storage.store.layout import VersionLayout

CAPTIONS_SCHEMA = pa.schema(
    [("item_id", pa.string()), ("caption", pa.string()), ("split", pa.string())]
)


def read_version_items(v: VersionLayout) -> pa.Table:
    return read_items_table(v.items)


def known_item_ids(v: VersionLayout, *, ok_only: bool = False) -> set[str]:
    """Every item_id a version recorded (ok or failed; only ok ones with ``ok_only``)."""
    t = read_parquet(v.items, columns=["item_id", "status"])
    if ok_only:
        t = t.filter(pa.compute.equal(t["status"], "ok"))
    return set(t["item_id"].to_pylist())


def failed_items(v: VersionLayout) -> list[dict]:
    """The files a version recorded as failed, with their reasons."""
    items = read_version_items(v)
    failed = items.filter(pa.compute.equal(items["status"], "failed"))
    cols = ("item_id", "source_id", "path", "location", "modality", "error")
    return failed.select(list(cols)).to_pylist()


def ok_item_ids(items: pa.Table) -> list[str]:
    return sorted(items.filter(pa.compute.equal(items["status"], "ok"))["item_id"].to_pylist())


def read_captions(v: VersionLayout) -> dict[str, CaptionEntry]:
    out: dict[str, CaptionEntry] = {}
    for r in read_parquet(v.captions).to_pylist():
        out.setdefault(r["item_id"], CaptionEntry([], r["split"])).captions.append(r["caption"])
    return out


def captions_table(captions: dict[str, CaptionEntry], ok: set[str]) -> pa.Table:
    """Captions of the ok items (failed items keep none)."""
    rows = [(i, c, e.split) for i, e in sorted(captions.items()) if i in ok for c in e.captions]
    return pa.Table.from_pydict(
        {
            "item_id": [r[0] for r in rows],
            "caption": [r[1] for r in rows],
            "split": [r[2] for r in rows],
        },
        schema=CAPTIONS_SCHEMA,
    )


def version_embeddings(v: VersionLayout) -> tuple[list[str], list[str], np.ndarray]:
    """Embeddings of a version sorted by item_id: (item_ids, modalities, float32 (n, d))."""
    ids, mods, x = read_embeddings(v.embedding_parts())
    order = np.argsort(ids, kind="stable")
    return [ids[i] for i in order], [mods[i] for i in order], x[order]


@dataclass(frozen=True)
class TrainingData:
    """What training a version's retriever reads: items with embeddings and IDs, the frozen
    quantizers, and the captions."""

    item_ids: list[str]  # sorted
    embeddings: np.ndarray  # float32 (n, d), row-aligned with item_ids
    sids: SemanticIDs
    indexer: SemanticIndexer
    captions: dict[str, CaptionEntry]


def training_data(v: VersionLayout) -> TrainingData:
    ids, _, x = version_embeddings(v)
    return TrainingData(
        ids, x, read_semantic_ids(v.semantic_ids), load_indexer(v.codebooks), read_captions(v)
    )
