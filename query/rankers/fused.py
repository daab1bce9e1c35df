"""The fused path over a loaded version (``auto`` wherever a component has meaning): its
items that pass, their text spaces, the rows trained on captions and the version's fitted
weights (its manifest's ``fusion``; an older version without them gets
ace_core.retrieval.fusion.default_fusion). The one builder of what it searches
(``fused_inputs``) and the indexes it keeps per item subset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ace_core.retrieval.dense_index import flat_index
from ace_core.retrieval.fused_search import (
    FusedInputs,
    fused_search,
    spaces_of_rows,
    trained_rows,
    training_keywords,
)
from ace_core.retrieval.fusion import Fusion, default_fusion
from ace_core.retrieval.keywords import KeywordIndex
from ace_index.query.filters import Filters
from ace_index.query.rankers.base import Ranked, RankRequest
from ace_index.query.request import QueryError
from ace_index.storage.formats.shards import towers_are_trained

MAX_KEPT = 8  # item subsets (modality, filters) whose dense indexes a loaded version keeps

if TYPE_CHECKING:
    from ace_index.query.loaded import LoadedVersion


class FusedRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        return bool(loaded.captions) or towers_are_trained(loaded.encoders)

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        hits, tables = fused_ranked(
            loaded, request.texts, request.k, request.modality, request.beam, request.filters
        )
        return Ranked(hits, tables)


def fused_ranked(
    loaded: LoadedVersion,
    texts: list[str],
    k: int,
    modality: str | None,
    beam: int,
    filters: Filters,
) -> tuple[list, list]:
    """Top-k (row, fused score) per query and each query's candidate table."""
    if not len(loaded.subset(modality, filters)[0]):  # cached: read again below
        return [[] for _ in texts], []
    inp = fused_inputs(loaded, modality, filters)
    if not inp.present:
        raise QueryError(f"{loaded.version} has no captions and no trained text towers to fuse")
    fusion = Fusion.from_record(loaded.fusion) if loaded.fusion else default_fusion(inp.present)
    return fused_search(inp, texts, min(k, len(inp.rows)), fusion, beam)


def fused_inputs(loaded: LoadedVersion, modality: str | None, filters: Filters) -> FusedInputs:
    """What the fused path searches for the items of (modality, filters): their rows and
    trie, the towers' spaces (none if untrained), and the kept dense and keyword indexes."""
    rows, trie = loaded.subset(modality, filters)
    towers = towers_are_trained(loaded.encoders)
    return FusedInputs(
        loaded.model,
        rows,
        trie,
        loaded.spaces_of(modality, filters) if towers else {},
        bool(loaded.captions),
        captioned(loaded),
        _spaces_of_rows(loaded),
        _indexes(loaded, (modality, filters)),
        training_index(loaded),
    )


def _indexes(loaded: LoadedVersion, key) -> dict:
    """The dense indexes of an item subset, kept for the last MAX_KEPT subsets."""
    kept = loaded.cache.dense_indexes
    with loaded.cache.lock:
        if key not in kept and len(kept) >= MAX_KEPT:
            kept.pop(next(iter(kept)))
        return kept.setdefault(key, {})


def exact_index(loaded: LoadedVersion, modality: str | None, filters: Filters, rows: np.ndarray):
    """A faiss flat (exact) inner-product index over the embeddings of ``rows``, the items of
    (modality, filters): the ``dense`` path's, built once per kept subset (building one per
    batch copied the embeddings every time: 8 s a batch at 1M items)."""
    kept = _indexes(loaded, (modality, filters))
    with loaded.cache.lock:
        if "exact" not in kept:
            kept["exact"] = flat_index(loaded.model.item_emb[rows])
        return kept["exact"]


def _spaces_of_rows(loaded: LoadedVersion) -> np.ndarray:
    def build() -> np.ndarray:
        return spaces_of_rows([loaded.items[i]["modality"] for i in loaded.model.item_ids])

    return loaded.cache.once("space_of_row", build)


def training_index(loaded: LoadedVersion) -> KeywordIndex | None:
    """BM25 over the items' file names and training captions (None: no captions): the fused
    path's lexical component and the bm25 baseline; built once per loaded version."""
    if not loaded.captions:
        return None

    def build() -> KeywordIndex:
        paths = [loaded.items[i]["path"] for i in loaded.model.item_ids]
        return training_keywords(paths, loaded.held_out_queries().train)

    return loaded.cache.once("training_keywords", build)


def captioned(loaded: LoadedVersion) -> np.ndarray:
    """Per row of the version's items: trained on captions (the protocol's training split)."""

    def build() -> np.ndarray:
        train = loaded.held_out_queries().train if loaded.captions else []
        return trained_rows(loaded.n_items, train)

    return loaded.cache.once("captioned", build)
