"""What training validates on: pure generation as it is served (``--path generative``), on
held-out captions of captioned items: the captions path and, where the item encoders' text
towers are given, the zero-shot path on the same captions, merged as the service merges them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ace_core.retrieval.evaluation import retrieval_metrics
from ace_core.retrieval.generation import generative_search
from ace_core.retrieval.text_features import TextFeatures
from ace_core.retrieval.zero_shot import merge_generated, text_spaces, tower_queries, zero_shot_hits


@dataclass(frozen=True)
class ZeroShotInputs:
    """The item encoders' text towers, for the zero-shot path: each item's modality (in the
    retriever's row order) and each space's tower (text -> embeddings)."""

    modalities: Sequence[str]
    towers: dict[str, Callable]


@dataclass
class Validation:
    """Validation queries: features and gold rows, and (zero-shot) the item spaces with the
    towers' embeddings of the same texts."""

    feats: TextFeatures
    gold: np.ndarray
    spaces: dict | None = None
    queries: dict | None = None

    @classmethod
    def of(cls, feats, gold, texts: list[str], model, zero_shot: ZeroShotInputs | None):
        if zero_shot is None or not len(gold):
            return cls(feats, gold)
        spaces = text_spaces(zero_shot.modalities, model.id_tokens, zero_shot.towers, model.trie_of)
        queries = tower_queries(spaces, texts, model.item_emb.shape[1])
        return cls(feats, gold, spaces, queries)

    def __len__(self) -> int:
        return len(self.gold)

    def evaluate(self, decoder, trie, beam: int, limit: int, device) -> dict:
        """R@k and MRR@10 of the first ``limit`` queries, the paths merged."""
        rows = np.arange(min(len(self.gold), limit))
        hits = generative_search(decoder, self.feats, trie, beam, 10, device=device, rows=rows)
        if self.spaces:
            queries = {name: q[rows] for name, q in self.queries.items()}
            zero = zero_shot_hits(decoder, self.spaces, queries, len(rows), 10, beam, device)
            hits = merge_generated(decoder, hits, zero, 10)
        return retrieval_metrics([[i for i, _ in r] for r in hits], list(self.gold[rows]))
