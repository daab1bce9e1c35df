"""A published version loaded for queries: its retrieval model, items, semantic IDs, sources
and captions, and what queries build on them once (item subsets and their tries, the towers'
text spaces, the keyword index, the held-out split). The rankers (query.rankers) rank
queries over it; callers search through ``query.search``, which validates and resolves
``auto`` once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ace_core.media.embed_config import EmbedConfig
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.evaluation import QuerySplit, scored_sample, split_queries
from ace_core.retrieval.keywords import KeywordIndex, item_document
from ace_core.retrieval.retrieval_model import RetrievalModel
from ace_core.retrieval.training import TrainConfig
from ace_core.retrieval.zero_shot import TextSpace, text_spaces
from ace_index.query.filters import Filters
from ace_index.query.towers import load_text_towers
from ace_index.query.version_cache import VersionCache
from ace_index.storage.formats.manifest import config_from_manifest, version_config, version_sources
from ace_index.storage.formats.retriever import load_retriever
from ace_index.storage.formats.semantic_id_table import read_semantic_ids
from ace_index.storage.formats.shards import towers_are_trained
from ace_index.storage.formats.version_data import (
    read_captions,
    read_version_items,
    version_embeddings,
)
from ace_index.storage.store import StoreError, open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.storage.store.sources import Source
from ace_index.storage.store.verify import verify_version

NO_FILTERS = Filters()
MAX_FILTERED = 32  # filtered item sets (and their tries) kept per loaded version
Hits = list[list[tuple[int, float]]]  # per query: (row of the model's items, score), best first


@dataclass
class LoadedVersion:
    """A version loaded for queries: its model, items, semantic IDs and sources."""

    version: str
    model: RetrievalModel
    items: dict[str, dict]  # item_id -> items.parquet row
    sids: dict[str, str]  # item_id -> "c.f1.f2.f3.u"
    sources: dict[str, Source]
    captions: dict[str, list[str]] = field(default_factory=dict)  # item_id -> captions
    embed: EmbedConfig | None = None  # the version's embedding config (its query towers)
    encoders: dict = field(default_factory=dict)  # the manifest's encoder records
    store: str | None = None  # where it was loaded from (its kept calibrations)
    fusion: dict | None = None  # the manifest's fitted fusion weights (None: defaults)
    cache: VersionCache = field(default_factory=VersionCache)  # what it builds on first use

    @property
    def generative_path(self) -> str:
        """What ``generative`` (pure generation) means for this version: caption-trained
        MiniLM path, the encoders' text towers (no captions), or both merged (captions and
        trained towers)."""
        if not self.captions:
            return "zero-shot"
        return "both" if towers_are_trained(self.encoders) else "captions"

    def resolve(self, path: str) -> str:
        """A requested path with ``auto`` and ``generative`` resolved: ``auto`` is the fused
        path wherever a component has meaning (captions, or trained text towers)."""
        fusable = bool(self.captions) or towers_are_trained(self.encoders)
        if path == "auto":
            return "fused" if fusable else self.generative_path
        return self.generative_path if path == "generative" else path

    @property
    def n_items(self) -> int:
        return len(self.model.item_ids)

    def text_spaces(self) -> dict:
        """The encoders' text towers by item space (loaded once; AceInputError when the
        weights at hand are not the version's)."""
        return self.cache.once("text_spaces", self._text_spaces)

    def _text_spaces(self) -> dict:
        towers = load_text_towers(
            self.version, self.embed or EmbedConfig(), self.encoders, device=self.model.device
        )
        modalities = [self.items[i]["modality"] for i in self.model.item_ids]
        return text_spaces(modalities, self.model.id_tokens, towers, self.model.trie_of)

    def keyword_index(self) -> KeywordIndex:
        """BM25 over the items' file names and captions (built on first use)."""
        return self.cache.once("file_keywords", self._file_keywords)

    def _file_keywords(self) -> KeywordIndex:
        items, captions = self.items, self.captions
        documents = [
            item_document(items[i]["path"] or "", captions.get(i, [])) for i in self.model.item_ids
        ]
        return KeywordIndex(documents)

    def held_out_queries(self) -> QuerySplit:
        """The version's training split and its validation and test queries (seeded
        samples), as its build trained, validated and evaluated on them; computed once."""
        return self.cache.once("held_out", self._held_out)

    def _held_out(self) -> QuerySplit:
        t = self.train_config()
        captions = read_captions(self.layout())
        split = split_queries(self.model.item_ids, captions, seed=t.seed)
        return scored_sample(split, t.max_val_queries, t.max_test_queries, t.seed, set())

    def train_config(self) -> TrainConfig:
        """The training settings the version was built with (its split's seed and sizes)."""
        return version_config(self.store, self.version).train

    def layout(self) -> VersionLayout:
        return open_store(self.store).version(self.version)

    def embed_config(self) -> EmbedConfig:
        return self.embed or EmbedConfig()

    def example_encoder(self, kind: str, build):
        """The media encoder of ``kind`` for query by file, built once by
        ``build(kind, shared)`` (``shared(space)``: the encoder of another kind's space)."""
        encoders = self.cache.example_encoders
        if kind not in encoders:
            encoders[kind] = build(kind, lambda k: self.example_encoder(k, build))
        return encoders[kind]

    def subset_of(self, modalities: list[str]) -> tuple[np.ndarray, Trie]:
        """The rows of the items of ``modalities`` and a trie of their IDs."""
        if len(modalities) == 1:
            return self.subset(modalities[0])
        key = tuple(sorted(modalities))
        subsets = self.cache.subsets
        with self.cache.lock:
            if key not in subsets:
                rows = self._rows_passing(set(key), NO_FILTERS)
                subsets[key] = (rows, self.model.trie_of(rows))
            return subsets[key]

    def subset(
        self, modality: str | None, filters: Filters = NO_FILTERS
    ) -> tuple[np.ndarray, Trie]:
        """The rows of the items that pass (one modality's, or all for None; and
        ``filters``) and a trie of their IDs; the last MAX_FILTERED filtered sets are kept."""
        key = (modality, filters) if filters.active else modality
        with self.cache.lock:
            return self._subset(key, modality, filters)

    def _subset(self, key, modality: str | None, filters: Filters) -> tuple[np.ndarray, Trie]:
        subsets = self.cache.subsets
        if key not in subsets:
            kinds = {modality} if modality else None
            rows = self._rows_passing(kinds, filters)
            if modality is None and not filters.active:
                subsets[key] = (rows, self.model.trie)
            else:
                subsets[key] = (rows, self.model.trie_of(rows))
            filtered = [k for k in subsets if isinstance(k, tuple) and k[-1] != NO_FILTERS]
            for old in filtered[:-MAX_FILTERED]:
                subsets.pop(old)
        return subsets[key]

    def _rows_passing(self, kinds: set[str] | None, filters: Filters) -> np.ndarray:
        items = self.items
        return np.array(
            [
                n
                for n, i in enumerate(self.model.item_ids)
                if (kinds is None or items[i]["modality"] in kinds) and filters.keeps(items[i])
            ],
            np.int64,
        )

    def spaces_of(self, modality: str | None, filters: Filters = NO_FILTERS) -> dict:
        """The text spaces over the items that pass (``modality``, ``filters``)."""
        spaces = self.text_spaces()
        if modality is None and not filters.active:
            return spaces
        key = ("spaces", modality, filters)
        subsets = self.cache.subsets
        with self.cache.lock:
            if key in subsets:
                return subsets[key]
            rows, _ = self.subset(modality, filters)
            keep, out = set(rows.tolist()), {}
            for name, space in spaces.items():
                mine = np.array([r for r in space.rows if r in keep], np.int64)
                if len(mine):
                    trie = self.model.trie_of(mine)
                    out[name] = TextSpace(space.embed_text, mine, trie)
            subsets[key] = out
            return out

    def result(self, row: int, score: float) -> dict:
        item_id = self.model.item_ids[row]
        item = self.items[item_id]
        source = self.sources.get(item["source_id"])
        return {
            "item_id": item_id,
            "path": item["path"],
            "source_id": item["source_id"],
            "location": source.locate(item["path"]) if source else None,
            "modality": item["modality"],
            "sid": self.sids[item_id],
            "date": item.get("date"),
            "score": round(score, 4),
        }

    def item(self, item_id: str) -> dict | None:
        """Metadata, captions and semantic ID of an indexed item (None if not indexed)."""
        row = self.items.get(item_id)
        if row is None or item_id not in self.row_of:
            return None
        n = self.row_of[item_id]
        source = self.sources.get(row["source_id"])
        tokens = self.model.id_tokens[n]
        return {
            **{k: v for k, v in row.items() if v is not None},
            "location": source.locate(row["path"]) if source else row.get("location"),
            "sid": self.sids[item_id],
            "captions": self.captions.get(item_id, []),
            "tokens": tokens.tolist(),
        }

    @property
    def row_of(self) -> dict[str, int]:
        return self.cache.once("row_of", lambda: {i: n for n, i in enumerate(self.model.item_ids)})


def load_version(store: str, version: str | None = None) -> LoadedVersion:
    """A published version (LATEST by default), verified against its manifest first."""
    s = open_store(store)
    v = s.resolve(version)
    layout = s.version(v)
    if not layout.retriever_weights.exists():
        raise StoreError(f"version {v} has no retriever")
    verify_version(store, v)  # never answer from damaged files
    manifest = s.manifest(v)
    model, items, sids, captions = read_for_queries(layout)
    return LoadedVersion(
        v,
        model,
        items,
        sids,
        version_sources(store, v),
        captions,
        embed=config_from_manifest(manifest["config"]).embed,
        encoders=manifest.get("encoders") or {},
        store=store,
        fusion=manifest.get("fusion"),
    )


def read_for_queries(layout: VersionLayout) -> tuple[RetrievalModel, dict, dict, dict]:
    """What a version folder (published or staged) holds for queries: the retriever over its
    embeddings and IDs, its item rows, its semantic IDs and its captions by item."""
    ids, _, x = version_embeddings(layout)
    sids = read_semantic_ids(layout.semantic_ids)
    model = load_retriever(layout.retriever, ids, x, sids.tokens())
    items = {r["item_id"]: r for r in read_version_items(layout).to_pylist()}
    captions = {k: e.captions for k, e in read_captions(layout).items()}
    return model, items, dict(zip(sids.item_ids, sids.sids)), captions
