"""A trained retrieval model for one index version: generative retriever + dense baseline.

``RetrievalModel.search`` answers text queries; fit.py builds and trains one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.ids.semantic_ids import SemanticIDs, SemanticIndexer
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense import DenseProjection, dense_search
from ace_core.retrieval.model import (
    IDDecoder,
    RetrieverConfig,
    TextEncoder,
    Vocab,
)
from ace_core.retrieval.text_features import TextFeatures
from ace_core.retrieval.training import generative_search

logger = logging.getLogger(__name__)

SUFFIX_HEADROOM = 16  # spare suffix tokens so incremental ingests rarely grow the vocabulary
MAX_QUERY_CHARS = 2000


@dataclass
class RetrievalModel:
    config: RetrieverConfig
    vocab: Vocab
    item_ids: list[str]  # sorted; row i of item_emb / id_tokens
    item_emb: np.ndarray  # float32 (n, D)
    id_tokens: np.ndarray  # int64 (n, L + 2) vocabulary ids
    encoder: TextEncoder
    tokenizer: object
    decoder: IDDecoder
    dense: DenseProjection
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _trie: Trie | None = None

    @property
    def trie(self) -> Trie:
        if self._trie is None:
            self._trie = Trie(self.id_tokens)
        return self._trie

    def features(self, texts: Sequence[str], cache_mb: int = 1024) -> TextFeatures:
        return TextFeatures(
            self.encoder,
            self.tokenizer,
            list(texts),
            device=self.device,
            max_tokens=self.config.max_query_tokens,
            cache_mb=cache_mb,
        )

    def search(self, texts: Sequence[str], k: int = 10, beam: int = 10):
        """Generative retrieval: top-k (item index, score) per query."""
        validate_queries(texts, k, len(self.item_ids))
        return generative_search(
            self.decoder,
            self.features(texts),
            self.trie,
            beam,
            min(k, len(self.item_ids)),
            device=self.device,
        )

    def dense_search(self, texts: Sequence[str], k: int = 10):
        validate_queries(texts, k, len(self.item_ids))
        return dense_search(
            self.dense, self.features(texts), self.item_emb, min(k, len(self.item_ids))
        )


def validate_queries(texts: Sequence[str], k: int, n_items: int) -> None:
    if k <= 0:
        raise AceInputError(f"k must be positive, got {k}")
    if n_items == 0:
        raise AceInputError("the index holds no items")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise AceInputError("empty query: give some text to search for")
        if len(t) > MAX_QUERY_CHARS:
            raise AceInputError(f"query too long ({len(t)} characters, at most {MAX_QUERY_CHARS})")


def build_vocab(sids: SemanticIDs, indexer: SemanticIndexer) -> Vocab:
    return Vocab(
        n_coarse=int(indexer.centroids.shape[0]),
        levels=int(sids.fine.shape[1]),
        codebook_size=int(indexer.codebook_size),
        n_suffix=int(sids.suffix.max(initial=0)) + 1 + SUFFIX_HEADROOM,
    )


def codebook_vectors(indexer: SemanticIndexer) -> np.ndarray | None:
    return None if indexer.rqvae is None else indexer.rqvae.codebooks.detach().cpu().numpy()


def new_decoder(
    cfg: RetrieverConfig,
    vocab: Vocab,
    encoder: TextEncoder,
    item_dim: int,
    indexer: SemanticIndexer,
) -> IDDecoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        decoder = IDDecoder(cfg, vocab, encoder.hidden, encoder.n_layers, item_dim)
    decoder.init_id_embeddings(indexer.centroids, codebook_vectors(indexer), cfg.seed)
    return decoder
