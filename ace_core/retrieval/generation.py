"""Generating semantic IDs for queries, constrained to a trie of the version's IDs: from a
query's text features (the caption path) or from embeddings in the items' space (the
item-memory path: zero-shot text-tower queries and query by example). ``beam`` is raised to
``k`` here when smaller, so every caller gets k distinct items where the trie holds them."""

from __future__ import annotations

import numpy as np
import torch

from ace_core.retrieval._torch import autocast
from ace_core.retrieval.constrained_generation import Trie, constrained_beam_search
from ace_core.retrieval.model import IDDecoder
from ace_core.retrieval.text_features import TextFeatures


@torch.no_grad()
def generative_search(
    decoder: IDDecoder,
    feats: TextFeatures,
    trie: Trie,
    beam: int,
    k: int,
    *,
    device="cpu",
    batch: int = 32,
    rows: np.ndarray | None = None,
):
    """Top-k (item index, log-prob) per query, via trie-constrained beam search."""
    decoder.eval()
    rows = np.arange(len(feats)) if rows is None else rows
    out = []
    for i in range(0, len(rows), batch):
        b = torch.from_numpy(rows[i : i + batch])
        layers, pad = feats.layers(b)
        with autocast(torch.device(device)):
            memory, pad, _ = decoder.memory_from_text(layers, pad)
            res = constrained_beam_search(decoder, memory, pad, trie, max(beam, k))
        out.extend(r[:k] for r in res)
    return out


@torch.no_grad()
def search_by_embedding(
    decoder: IDDecoder,
    emb: np.ndarray,
    trie: Trie,
    beam: int,
    k: int,
    device="cpu",
    batch: int = 32,
):
    """Generate IDs from item embeddings (the indexing task's input): query by example."""
    decoder.eval()
    x = torch.from_numpy(np.asarray(emb, np.float32))
    out = []
    for i in range(0, len(x), batch):
        memory = decoder.memory_from_items(x[i : i + batch].to(device))
        out.extend(
            r[:k] for r in constrained_beam_search(decoder, memory, None, trie, max(beam, k))
        )
    return out
