"""A trained retrieval model for one index version: generative retriever + dense baseline.

fit.py builds and trains one; queries go through query.search (the one search entry), which
calls training.generative_search and dense.dense_search on its parts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ace_core.ids.semantic_ids import SemanticIndexer
from ace_core.ids.sids import SemanticIDs
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense import DenseProjection
from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab
from ace_core.retrieval.text_encoder import TextEncoder, resolved_precision
from ace_core.retrieval.text_features import FeatureSpec, TextFeatures

logger = logging.getLogger(__name__)

SUFFIX_HEADROOM = 16  # spare suffix tokens so incremental ingests rarely grow the vocabulary


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
            self._trie = self.trie_of(None)
        return self._trie

    def trie_of(self, rows: np.ndarray | None) -> Trie:
        """A trie of the IDs of ``rows`` (None: every item), tied to their embeddings when
        the decoder is tied (ace_core.retrieval.tied)."""
        trie = Trie(self.id_tokens if rows is None else self.id_tokens[rows])
        return trie.tie(self.item_emb, rows) if self.decoder.tied else trie

    @property
    def feature_spec(self) -> FeatureSpec:
        return feature_spec(self.config)

    def features(self, texts: Sequence[str]) -> TextFeatures:
        """The text encoder's features of ``texts``, computed now (queries)."""
        return TextFeatures.compute(
            self.encoder, self.tokenizer, list(texts), device=self.device, spec=self.feature_spec
        )


def feature_spec(cfg: RetrieverConfig) -> FeatureSpec:
    return FeatureSpec(
        max_tokens=cfg.max_query_tokens,
        pooled_memory=cfg.pooled_memory,
        precision=resolved_precision(cfg.text_precision),
    )


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
    n_items: int = 0,
) -> IDDecoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        decoder = IDDecoder(cfg, vocab, encoder.hidden, encoder.n_layers, item_dim, n_items)
    decoder.init_id_embeddings(indexer.centroids, codebook_vectors(indexer), cfg.seed)
    return decoder


def new_dense(cfg: RetrieverConfig, encoder: TextEncoder, item_dim: int) -> DenseProjection:
    """The dense baseline's projection, initialised from ``cfg.seed`` (not from whatever the
    process drew before: the same build gives the same baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return DenseProjection(encoder.hidden, item_dim)
