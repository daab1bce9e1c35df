"""A fit's metrics on its held-out test queries: the generative retriever (and, after an
ingest's fine-tune, its old items' and new items' queries apart) and the dense baseline."""

from __future__ import annotations

import numpy as np

from ace_core.retrieval.dense import dense_search
from ace_core.retrieval.evaluation import retrieval_metrics
from ace_core.retrieval.generation import generative_search
from ace_core.retrieval.retrieval_model import RetrievalModel
from ace_core.retrieval.text_features import TextFeatures


def test_metrics(model, split, feats, gold, dense, new_rows, init) -> dict:
    ev = {
        "protocol": split.protocol,
        "queries": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
    }
    ev["generative"], subsets = _generative(
        model, feats, gold, new_rows if init is not None else None
    )
    if dense:
        ev["dense"] = _dense(model, feats, gold)
    return {"eval": ev, "subsets": subsets}


def _generative(
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


def _dense(model: RetrievalModel, feats: TextFeatures, gold: np.ndarray) -> dict:
    if not len(gold):
        return retrieval_metrics([], [])
    ranked = dense_search(model.dense, feats, model.item_emb, 10)
    return retrieval_metrics([[i for i, _ in r] for r in ranked], list(gold))
