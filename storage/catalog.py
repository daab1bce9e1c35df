"""The read side of a store: versions, their configuration and eval, and queries against a
version's model. The command line prints what these return."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ace_core.config_io import from_dict
from ace_core.errors import AceInputError
from ace_core.index_config import IndexConfig
from ace_core.media.pipeline import EmbedConfig
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense import dense_search
from ace_core.retrieval.retrieval_model import RetrievalModel, validate_queries
from ace_core.retrieval.training import generative_search
from ace_core.retrieval.zero_shot import (
    PATHS,
    SPACE_OF_MODALITY,
    TextSpace,
    merge_paths,
    text_spaces,
    zero_shot_search,
)
from storage.codebooks import read_semantic_ids
from storage.query_towers import load_text_towers, towers_are_trained
from storage.retriever_io import load_retriever
from storage.sources import Source
from storage.store import Store, StoreError
from storage.verify import verify_version
from storage.version_data import read_captions, read_items, version_embeddings

# settings renamed when configs were nested: old manifests are read with their new names
_LEGACY_CONFIG_KEYS = {
    ("ingest_epochs",): ("ingest", "epochs"),
    ("ingest_lr_scale",): ("ingest", "lr_scale"),
    ("replay_ratio",): ("ingest", "replay_ratio"),
    ("train", "dense_epochs"): ("train", "dense", "epochs"),
    ("train", "dense_lr"): ("train", "dense", "lr"),
}


def config_from_manifest(config: dict) -> IndexConfig:
    """The typed configuration a manifest recorded (older manifests' flat names migrated)."""
    config = json.loads(json.dumps(config))  # a deep copy
    for old, new in _LEGACY_CONFIG_KEYS.items():
        parent = config
        for key in old[:-1]:
            parent = parent.get(key, {})
        if old[-1] in parent:
            value = parent.pop(old[-1])
            target = config
            for key in new[:-1]:
                target = target.setdefault(key, {})
            target[new[-1]] = value
    return from_dict(IndexConfig, config)


def version_config(store: str, version: str | None = None) -> IndexConfig:
    return config_from_manifest(Store(store).manifest(version)["config"])


def version_sources(store: str, version: str | None = None) -> dict[str, Source]:
    return {s["source_id"]: Source(**s) for s in Store(store).manifest(version).get("sources", [])}


def list_versions(store: str) -> list[dict]:
    """One row per published version, oldest first."""
    s = Store(store)
    latest = s.latest()
    rows = []
    for v in s.versions():
        m = s.manifest(v)
        ev, c = m.get("eval", {}), m.get("counts", {})
        rows.append(
            {
                "version": v,
                "parent_version": m.get("parent_version"),
                "operation": m.get("operation"),
                "created_at": m.get("created_at"),
                "items": c.get("ok"),
                "failed": c.get("failed"),
                "sources": [src["source_id"] for src in m.get("sources", [])],
                "latest": v == latest,
                "eval": {k: (ev.get(k) or {}).get("R@1") for k in ("generative", "dense")},
            }
        )
    return rows


def version_eval(store: str, version: str | None = None) -> dict:
    """The eval.json of a version, with the version's name."""
    s = Store(store)
    v = s.resolve(version)
    ev = json.loads(s.version(v).eval.read_text())
    keys = ("protocol", "queries", "generative", "dense", "subsets", "ablations")
    return {"version": v, **{k: ev.get(k) for k in keys}}


@dataclass
class VersionModel:
    """A version loaded for queries: its model, items, semantic IDs and sources."""

    version: str
    model: RetrievalModel
    items: dict[str, dict]  # item_id -> items.parquet row
    sids: dict[str, str]  # item_id -> "c.f1.f2.f3.u"
    sources: dict[str, Source]
    captions: dict[str, list[str]] = field(default_factory=dict)  # item_id -> captions
    embed: EmbedConfig | None = None  # the version's embedding config (its query towers)
    encoders: dict = field(default_factory=dict)  # the manifest's encoder records
    _rows: dict[str, int] | None = None
    _spaces: dict | None = None
    _subsets: dict = field(default_factory=dict)

    @property
    def default_path(self) -> str:
        """What ``auto`` means for this version: caption-trained MiniLM path, the encoders'
        text towers (no captions), or both merged (captions and trained towers)."""
        if not self.captions:
            return "zero-shot"
        return "both" if towers_are_trained(self.encoders) else "captions"

    def text_spaces(self) -> dict:
        if self._spaces is None:
            towers = load_text_towers(
                self.version, self.embed or EmbedConfig(), self.encoders, device=self.model.device
            )
            modalities = [self.items[i]["modality"] for i in self.model.item_ids]
            self._spaces = text_spaces(modalities, self.model.id_tokens, towers)
        return self._spaces

    def hits(
        self, texts: list[str], k: int, beam: int, path: str = "auto", modality: str | None = None
    ):
        """(row, score) lists through a query path: captions, zero-shot or both; with
        ``modality``, decoding is constrained to that modality's items."""
        path = self.default_path if path == "auto" else path
        if path not in PATHS:
            raise AceInputError(f"unknown query path {path!r} (one of {', '.join(PATHS)})")
        validate_queries(texts, k, len(self.model.item_ids))
        rows, trie = self.subset(modality)
        if not len(rows):
            return [[] for _ in texts]
        k = min(k, len(rows))
        caption_hits = zero_hits = None
        if path in ("captions", "both"):
            found = generative_search(self.model.decoder, self.model.features(texts), trie,
                                      beam, k, device=self.model.device)  # fmt: skip
            caption_hits = [[(int(rows[i]), s) for i, s in row] for row in found]
        if path in ("zero-shot", "both"):
            zero_hits = zero_shot_search(
                self.model.decoder, self.spaces_of(modality), texts,
                self.model.item_emb.shape[1], k, beam, device=self.model.device,
            )  # fmt: skip
        if caption_hits is None or zero_hits is None:
            return caption_hits or zero_hits
        return merge_paths(caption_hits, zero_hits, k)

    def subset(self, modality: str | None) -> tuple[np.ndarray, Trie]:
        """The rows of one modality's items (all items for None) and a trie of their IDs."""
        if modality not in self._subsets:
            if modality is None:
                self._subsets[None] = (np.arange(len(self.model.item_ids)), self.model.trie)
            else:
                ids = self.model.item_ids
                rows = np.array(
                    [n for n, i in enumerate(ids) if self.items[i]["modality"] == modality],
                    np.int64,
                )
                self._subsets[modality] = (rows, Trie(self.model.id_tokens[rows]))
        return self._subsets[modality]

    def spaces_of(self, modality: str | None) -> dict:
        spaces = self.text_spaces()
        if modality is None:
            return spaces
        space = spaces.get(SPACE_OF_MODALITY[modality])
        rows, trie = self.subset(modality)
        return {} if space is None else {"m": TextSpace(space.embed_text, rows, trie)}

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
        if self._rows is None:
            self._rows = {i: n for n, i in enumerate(self.model.item_ids)}
        return self._rows

    def search_many(
        self, texts: list[str], k: int, *, beam: int = 10, dense: bool = False,
        path: str = "auto", modality: str | None = None,
    ) -> list[list[dict]]:  # fmt: skip
        """Top-k results of several queries in one batched search (of one modality's items
        with ``modality``)."""
        k = min(k, len(self.model.item_ids))
        if dense:
            validate_queries(texts, k, len(self.model.item_ids))
            rows, _ = self.subset(modality)
            found = dense_search(self.model.dense, self.model.features(texts),
                                 self.model.item_emb[rows], min(k, len(rows)))  # fmt: skip
            hits = [[(int(rows[i]), s) for i, s in row] for row in found]
        else:
            hits = self.hits(texts, k, max(beam, k), path, modality)
        return [[self.result(i, score) for i, score in row] for row in hits]

    def similar(self, item_id: str, k: int = 10, *, beam: int = 10) -> list[dict]:
        """Query by example: the item's embedding through the decoder's item-memory path."""
        from ace_core.retrieval.training import search_by_embedding

        n = self.row_of[item_id]
        k = min(k, len(self.model.item_ids))
        hits = search_by_embedding(
            self.model.decoder, self.model.item_emb[n : n + 1], self.model.trie,
            max(beam, k), k, device=self.model.device,
        )[0]  # fmt: skip
        return [self.result(i, score) for i, score in hits]

    def query(
        self, text: str, k: int = 10, *, beam: int = 10, dense: bool = False, path: str = "auto"
    ) -> dict:
        return {
            "query": text,
            "version": self.version,
            "mode": "dense" if dense else "generative",
            "path": None if dense else (self.default_path if path == "auto" else path),
            "results": self.search_many([text], k, beam=beam, dense=dense, path=path)[0],
        }


def load_version_model(store: str, version: str | None = None) -> VersionModel:
    s = Store(store)
    v = s.resolve(version)
    layout = s.version(v)
    if not layout.retriever_weights.exists():
        raise StoreError(f"version {v} has no retriever")
    verify_version(store, v)  # never answer from damaged files
    ids, _, x = version_embeddings(layout)
    sids = read_semantic_ids(layout.semantic_ids)
    model = load_retriever(layout.retriever, ids, x, sids.tokens())
    items = {r["item_id"]: r for r in read_items(layout).to_pylist()}
    captions = {k: e.captions for k, e in read_captions(layout).items()}
    manifest = s.manifest(v)
    return VersionModel(
        v, model, items, dict(zip(sids.item_ids, sids.sids)), version_sources(store, v), captions,
        embed=config_from_manifest(manifest["config"]).embed,
        encoders=manifest.get("encoders") or {},
    )  # fmt: skip


def ablation_metrics(store: str, version: str | None = None) -> dict:
    """Test metrics of the ablations of a version: from its eval.json when it was built with
    them, else from the store's ablation results of that version, else trained now (each
    ablation trains its own model) and saved there, so the next call reuses them."""
    from ace_core.retrieval.ablations import run_ablations
    from storage.tables import write_json_atomic
    from storage.version_data import training_data

    s = Store(store)
    v = s.resolve(version)
    built = json.loads(s.version(v).eval.read_text()).get("ablations")
    if built:
        return built
    m = s.manifest(v)
    identity = {
        "version": v,
        "input_set_hash": m["input_set_hash"],
        "config_hash": m["config_hash"],
    }
    saved = s.ablations_file(v)
    if saved.exists():
        data = json.loads(saved.read_text())
        if data.get("for") == identity:
            return data["ablations"]
    result = run_ablations(training_data(s.version(v)), version_config(store, v))
    write_json_atomic({"for": identity, "ablations": result}, saved)
    return result
