"""Generating semantic IDs for queries, constrained to a trie of the version's IDs: from a
query's text features (the caption path) or from embeddings in the items' space (the
item-memory path: zero-shot text-tower queries and query by example). ``beam`` is raised to
``k`` here when smaller, so every caller gets k distinct items where the trie holds them."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

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
    """Top-k (item index, log-prob) per query, via trie-constrained beam search (a tied
    decoder's: log-probabilities over each query's k results, ``as_log_probs``)."""
    decoder.eval()
    rows = np.arange(len(feats)) if rows is None else rows
    out = []
    for i in range(0, len(rows), batch):
        b = torch.from_numpy(rows[i : i + batch])
        layers, pad = feats.layers(b)
        with autocast(torch.device(device)):
            memory, pad, q = decoder.memory_from_text(layers, pad)
            res = constrained_beam_search(
                decoder, memory, pad, trie, max(beam, k), query=q, offsets=decoder.item_offset
            )
        out.extend(r[:k] for r in res)
    return as_log_probs(out) if getattr(decoder, "tied", False) else out


@torch.no_grad()
def search_by_embedding(
    decoder: IDDecoder,
    emb: np.ndarray,
    trie: Trie,
    beam: int,
    k: int,
    device="cpu",
    batch: int = 32,
    normalise: bool = True,
):
    """Generate IDs from item embeddings (the indexing task's input): query by example.
    A tied decoder's scores are log-probabilities over each query's results, or with
    ``normalise=False`` its raw log-scores (to merge several tries' results first)."""
    decoder.eval()
    x = torch.from_numpy(np.asarray(emb, np.float32))
    out = []
    for i in range(0, len(x), batch):
        emb = x[i : i + batch].to(device)
        memory, q = decoder.memory_from_items(emb), F.normalize(emb, dim=-1)
        found = constrained_beam_search(decoder, memory, None, trie, max(beam, k), query=q)
        out.extend(r[:k] for r in found)
    return as_log_probs(out) if getattr(decoder, "tied", False) and normalise else out


def as_log_probs(hits: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
    """Each query's scores as log-probabilities over its own results (a tied decoder's raw
    scores add a dense term to a log-probability: ace_core.retrieval.tied)."""
    out = []
    for row in hits:
        s = np.array([v for _, v in row], np.float64)
        lse = np.logaddexp.reduce(s) if len(s) else 0.0
        out.append([(i, float(v - lse)) for (i, _), v in zip(row, s)])
    return out
