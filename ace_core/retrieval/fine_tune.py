"""Fine-tuning for an incremental ingest: the parent's retriever as the starting point
(``InitState``), the fine-tune's settings (``IngestConfig``) and the replay of old caption
pairs and items mixed with the new ones (``replay_sample``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.retrieval.batches import Replay
from ace_core.retrieval.dense import DenseProjection
from ace_core.retrieval.evaluation import QuerySplit
from ace_core.retrieval.model import IDDecoder, Vocab
from ace_core.retrieval.retrieval_model import SUFFIX_HEADROOM
from ace_core.retrieval.training import TrainConfig


@dataclass
class InitState:
    """A trained retriever to fine-tune from (incremental ingest)."""

    decoder: dict  # IDDecoder state dict
    dense: dict  # DenseProjection state dict
    vocab: Vocab
    item_ids: set[str]  # the items it was trained on
    item_order: list[str] = field(default_factory=list)  # the same, in its rows' order
    text_precision: str = "float32"  # the parent's text encoder's arithmetic (its features)


def grown_vocab(vocab: Vocab, old: Vocab) -> Vocab:
    """The old vocabulary, grown only where the new IDs need more tokens."""
    if (vocab.n_coarse, vocab.levels, vocab.codebook_size) != (
        old.n_coarse,
        old.levels,
        old.codebook_size,
    ):
        raise AceInputError("cannot fine-tune: the ID layout differs from the parent's")
    return replace(old, n_suffix=max(old.n_suffix, vocab.n_suffix - SUFFIX_HEADROOM))


def load_init(
    decoder: IDDecoder, dense: DenseProjection, init: InitState, item_ids: list[str]
) -> None:
    """The parent's weights in ``decoder`` and ``dense``: its vocabulary grown (suffix tokens
    are last, so old tokens keep their ids) and its per-item offsets moved to the rows of
    ``item_ids`` (new items start at zero)."""
    state = dict(init.decoder)
    old = state["tok.weight"]
    new = decoder.tok.weight.detach().clone()
    new[: old.shape[0]] = old
    state["tok.weight"] = new
    for key in ("item_offset.vectors.weight", "item_offset.bias", "item_offset.captioned"):
        if key in state:
            state[key] = _by_item(state[key], init.item_order, item_ids)
    decoder.load_state_dict(state)
    dense.load_state_dict(init.dense)


def _by_item(old: torch.Tensor, old_ids: list[str], item_ids: list[str]) -> torch.Tensor:
    """Rows of a per-item table moved to the rows of ``item_ids`` (new items: zero)."""
    row = {i: n for n, i in enumerate(old_ids)}
    new = old.new_zeros((len(item_ids), *old.shape[1:]))
    pairs = [(n, row[i]) for n, i in enumerate(item_ids) if i in row]
    if pairs:
        to, frm = (torch.tensor(x) for x in zip(*pairs))
        new[to] = old[frm]
    return new


REPLAY_MIN = 64  # at least this many old pairs / items are replayed per epoch


def replay_sample(
    split: QuerySplit,
    new_rows: set[int],
    n_items: int,
    ratio: float,
    epochs: int,
    seed: int,
    updates: str = "all",
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
        updates=updates,
    )
    return replace(split, train=new + pool), replay


UPDATES = {
    "all": "every weight, old items' offsets included",
    "new-items": "the shared weights and the new items' offsets (old items' offsets kept)",
    "new-offsets": "the new items' offsets alone (the parent's weights kept: nothing to forget)",
}


@dataclass(frozen=True)
class IngestConfig:
    """Fine-tuning of the parent's retriever when an incremental ingest adds items."""

    epochs: int = 12  # fine-tuning epochs (both models)
    lr_scale: float = 0.3  # learning rate = train.lr * this (less forgetting)
    replay_ratio: float = 2.0  # old caption pairs replayed per new pair, every epoch
    eval_every: int = 4  # validate every N epochs
    max_val_queries: int = 256  # new items' first, then a sample of old items'
    max_test_queries: int = 500  # the same (old-item vs new-item recall in eval.json)
    updates: str = "new-items"  # what the fine-tune changes (UPDATES; docs/BENCHMARKS.md)

    def fine_tune(self, train: TrainConfig) -> TrainConfig:
        """The training settings of a fine-tune: its cost follows the batch, not the corpus."""
        return replace(
            train,
            epochs=self.epochs,
            eval_every=self.eval_every,
            lr=train.lr * self.lr_scale,
            lr_decay=False,  # 12 short epochs at a constant rate: with a decay, the test of a
            #                  caption-less ingest's weights knowing the new items failed
            examples_per_item=None,  # its epochs are small (new items and a replay)
            max_steps=None,
            balance_index_task=False,  # its replay draws a part of the captions each epoch
            max_val_queries=min(train.max_val_queries, self.max_val_queries),
            max_test_queries=min(train.max_test_queries, self.max_test_queries),
            dense=replace(train.dense, epochs=min(train.dense.epochs, self.epochs)),
        )
