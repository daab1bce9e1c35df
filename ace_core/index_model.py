"""A trained retrieval model for one index version: generative retriever + dense baseline.

``fit_retrieval`` splits the captions (protocol in evaluation.py), trains both models, and
evaluates them on the held-out test queries. ``RetrievalModel.search`` answers text queries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.evaluation import QuerySplit, retrieval_metrics, split_queries
from ace_core.generate import Trie
from ace_core.retriever import IDDecoder, RetrieverConfig, TextEncoder, Vocab, build_text_encoder
from ace_core.semantic_ids import SemanticIDs, SemanticIndexer
from ace_core.training import (
    DenseProjection,
    Replay,
    TextFeatures,
    TrainConfig,
    TrainReport,
    dense_search,
    generative_search,
    train_dense,
    train_generative,
)

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

    def features(self, texts: Sequence[str]) -> TextFeatures:
        return TextFeatures(
            self.encoder,
            self.tokenizer,
            list(texts),
            device=self.device,
            max_tokens=self.config.max_query_tokens,
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


@dataclass
class FitResult:
    model: RetrievalModel
    split: QuerySplit
    generative_report: TrainReport
    eval: dict  # {"queries": {...}, "generative": M, "dense": M}
    subsets: dict | None = None  # fine-tuning: generative metrics on old vs new items


@dataclass
class InitState:
    """A trained retriever to fine-tune from (incremental ingest)."""

    decoder: dict  # IDDecoder state dict
    dense: dict  # DenseProjection state dict
    vocab: Vocab
    item_ids: set[str]  # the items it was trained on


def _grown_vocab(vocab: Vocab, old: Vocab) -> Vocab:
    """The old vocabulary, grown only where the new IDs need more tokens."""
    if (vocab.n_coarse, vocab.levels, vocab.codebook_size) != (
        old.n_coarse,
        old.levels,
        old.codebook_size,
    ):
        raise AceInputError("cannot fine-tune: the ID layout differs from the parent's")
    return replace(old, n_suffix=max(old.n_suffix, vocab.n_suffix - SUFFIX_HEADROOM))


def _load_init(decoder: IDDecoder, dense: DenseProjection, init: InitState) -> None:
    state = dict(init.decoder)
    old = state["tok.weight"]
    new = decoder.tok.weight.detach().clone()
    new[: old.shape[0]] = old  # suffix tokens are last: old rows keep their ids
    state["tok.weight"] = new
    decoder.load_state_dict(state)
    dense.load_state_dict(init.dense)


REPLAY_MIN = 64  # at least this many old pairs / items are replayed per epoch


def _replay(
    split: QuerySplit, new_rows: set[int], n_items: int, ratio: float, epochs: int, seed: int
) -> tuple[QuerySplit, Replay]:
    """Fine-tuning data: the new items' caption pairs, and a pool of old pairs from which
    every epoch draws ``ratio`` per new pair (at least REPLAY_MIN); the same for the indexing
    task's item rows. The pool is at most what the epochs can draw (a seeded sample), so
    memory and caption-encoding cost stay bounded on large corpora while old items are
    revisited across epochs rather than the same few every epoch."""
    rng = np.random.default_rng(seed)
    new = [p for p in split.train if p[1] in new_rows]
    old = [p for p in split.train if p[1] not in new_rows]
    per_caps = max(REPLAY_MIN, int(ratio * len(new)))
    keep = np.sort(rng.choice(len(old), min(len(old), per_caps * epochs), replace=False))
    pool = [old[i] for i in keep.tolist()]
    old_rows = np.asarray([i for i in range(n_items) if i not in new_rows], np.int64)
    replay = Replay(
        new_caps=np.arange(len(new)),
        old_caps=np.arange(len(new), len(new) + len(pool)),
        per_epoch_caps=per_caps,
        new_rows=np.asarray(sorted(new_rows), np.int64),
        old_rows=old_rows,
        per_epoch_rows=max(REPLAY_MIN, int(ratio * len(new_rows))),
    )
    return replace(split, train=new + pool), replay


def fit_retrieval(
    item_ids: Sequence[str],
    item_emb: np.ndarray,
    sids: SemanticIDs,
    indexer: SemanticIndexer,
    captions: Mapping[str, object],
    *,
    config: RetrieverConfig = RetrieverConfig(),
    train: TrainConfig = TrainConfig(),
    device: str | torch.device | None = None,
    encoder=None,
    progress: Callable[[int, float], None] | None = None,
    dense: bool = True,
    init: InitState | None = None,
    replay_ratio: float = 2.0,
) -> FitResult:
    """Train the generative retriever (and the dense baseline) for a set of items with IDs.

    With ``init`` (incremental ingest) the parent's weights are fine-tuned on the new items'
    captions mixed with a replay of old pairs; metrics are also reported on old vs new items.
    """
    if list(item_ids) != sids.item_ids:
        raise AceInputError("items and semantic IDs are not aligned (both must be sorted)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    enc, tok, _ = encoder or build_text_encoder(config)
    enc.eval().to(device)
    vocab = build_vocab(sids, indexer)
    if init is not None:
        vocab = _grown_vocab(vocab, init.vocab)
    split = split_queries(item_ids, captions, seed=train.seed)
    full_split = split
    new_rows = {n for n, i in enumerate(item_ids) if init is not None and i not in init.item_ids}
    replay = None
    if init is not None:
        split, replay = _replay(
            split, new_rows, len(item_ids), replay_ratio, train.epochs, train.seed
        )
    if not split.train and not train.index_task:
        raise AceInputError("no training captions and the indexing task is off: nothing to learn")
    decoder = new_decoder(config, vocab, enc, item_emb.shape[1], indexer)
    model = RetrievalModel(
        config,
        vocab,
        list(item_ids),
        np.asarray(item_emb, np.float32),
        vocab.encode(sids.tokens()),
        enc,
        tok,
        decoder,
        DenseProjection(enc.hidden, item_emb.shape[1]),
        device,
    )
    if init is not None:
        _load_init(decoder, model.dense, init)
    feats, gold = _features(model, split)
    val = (feats["val"], gold["val"]) if len(gold["val"]) else None
    report = train_generative(
        decoder,
        feats["train"],
        gold["train"],
        model.item_emb,
        model.id_tokens,
        model.trie,
        train,
        val=val,
        device=device,
        progress=progress,
        replay=replay,
        validate_initial=init is not None,  # never publish a fine-tune worse than its start
    )
    if dense and len(gold["train"]):
        train_dense(model.dense, feats["train"], gold["train"], model.item_emb, train, val=val)
    ev = {
        "protocol": split.protocol,
        "queries": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
    }
    ev["generative"], subsets = _generative_test_metrics(
        model, feats["test"], gold["test"], new_rows if init is not None else None
    )
    if dense:
        ev["dense"] = _dense_test_metrics(model, feats["test"], gold["test"])
    return FitResult(model, full_split, report, ev, subsets)


def _features(model: RetrievalModel, split: QuerySplit):
    """Encoder features and gold item rows of the train / val / test queries."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    feats = {name: model.features([t for t, _ in pairs]) for name, pairs in parts.items()}
    gold = {name: np.asarray([n for _, n in pairs], np.int64) for name, pairs in parts.items()}
    return feats, gold


def _generative_test_metrics(
    model: RetrievalModel, feats: TextFeatures, gold: np.ndarray, new_rows: set[int] | None
) -> tuple[dict, dict | None]:
    """Test metrics, and (fine-tuning) the same split into old-item and new-item queries."""
    if not len(gold):
        return retrieval_metrics([], []), None
    ranked = [
        [i for i, _ in r]
        for r in generative_search(model.decoder, feats, model.trie, 10, 10, device=model.device)
    ]
    if new_rows is None:
        return retrieval_metrics(ranked, list(gold)), None
    is_new = np.isin(gold, sorted(new_rows))
    subsets = {}
    for name, mask in (("old_items", ~is_new), ("new_items", is_new)):
        rows = np.flatnonzero(mask)
        subsets[name] = {
            **retrieval_metrics([ranked[r] for r in rows], list(gold[rows])),
            "queries": int(len(rows)),
        }
    return retrieval_metrics(ranked, list(gold)), subsets


def _dense_test_metrics(model: RetrievalModel, feats: TextFeatures, gold: np.ndarray) -> dict:
    if not len(gold):
        return retrieval_metrics([], [])
    ranked = dense_search(model.dense, feats, model.item_emb, 10)
    return retrieval_metrics([[i for i, _ in r] for r in ranked], list(gold))
