"""Zero-shot queries: the item encoders' text towers into the decoder's item-memory path.

A query is embedded by the text tower of each item space (open_clip's for image and video
items, CLAP's for audio items), brought to the index's common width, and decoded through the
item-memory path that the indexing task trains for every item (captioned or not). Each space
decodes against a trie of its own items only (the spaces are not aligned with each other), and
the per-space beams are merged by log-probability.

``merge_paths`` combines these results with the caption-trained path (MiniLM fusion): an item's
score is log(p_captions + p_zero_shot), so an item either path is sure of ranks high.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ace_core.media.encoders import to_common_dim
from ace_core.media.modalities import SPACE_OF_MODALITY
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense_index import flat_index, top_rows
from ace_core.retrieval.generation import search_by_embedding

Hits = list[list[tuple[int, float]]]


@dataclass
class TextSpace:
    """One item space's text tower and the rows of the items that live in it."""

    embed_text: Callable[[Sequence[str]], np.ndarray]
    rows: np.ndarray  # int64 rows of the retrieval model's items
    trie: Trie  # over those items' ID tokens; leaf i is rows[i]


def text_spaces(
    modalities: Sequence[str], id_tokens: np.ndarray, towers: dict[str, Callable]
) -> dict[str, TextSpace]:
    """Group the items by space ("image": image + video, "audio") for the given towers."""
    space = np.array([SPACE_OF_MODALITY[m] for m in modalities])
    out = {}
    for name, embed_text in towers.items():
        rows = np.flatnonzero(space == name)
        if len(rows):
            out[name] = TextSpace(embed_text, rows, Trie(id_tokens[rows]))
    return out


def tower_queries(spaces: dict[str, TextSpace], texts: Sequence[str], dim: int) -> dict:
    """space -> (queries, dim) text-tower embeddings at the index's common width."""
    return {name: to_common_dim(s.embed_text(list(texts)), dim) for name, s in spaces.items()}


def zero_shot_search(
    decoder, spaces: dict[str, TextSpace], texts: Sequence[str], dim: int, k: int, beam: int,
    *, device="cpu", queries: dict | None = None,
) -> Hits:  # fmt: skip
    """Top-k (row, log-prob) per query over every space, merged by score (``queries``: the
    towers' embeddings of ``texts`` when already computed)."""
    queries = queries or tower_queries(spaces, texts, dim)
    merged: Hits = [[] for _ in texts]
    for name, space in spaces.items():
        emb = queries[name]
        hits = search_by_embedding(decoder, emb, space.trie, max(beam, k), k, device=device)
        for q, row in enumerate(hits):
            merged[q].extend((int(space.rows[i]), s) for i, s in row)
    return [sorted(row, key=lambda h: -h[1])[:k] for row in merged]


def merge_paths(a: Hits, b: Hits, k: int) -> Hits:
    """Per query: items of both result lists scored log(p_a + p_b), best first."""
    out = []
    for row_a, row_b in zip(a, b):
        prob: dict[int, float] = {}
        for i, s in list(row_a) + list(row_b):
            prob[i] = prob.get(i, 0.0) + float(np.exp(s))
        ranked = sorted(prob.items(), key=lambda h: -h[1])[:k]
        out.append([(i, float(np.log(max(p, 1e-30)))) for i, p in ranked])
    return out


def tower_dense_search(
    spaces: dict[str, TextSpace], texts: Sequence[str], item_emb: np.ndarray, k: int,
    queries: dict | None = None,
) -> Hits:  # fmt: skip
    """The text-tower dense baseline (what clip-retrieval does): each query's tower embedding
    searched by inner product (faiss, exact) over its space's item embeddings, merged by
    cosine."""

    def exact(name: str, rows: np.ndarray):
        return flat_index(item_emb[rows])

    queries = queries or tower_queries(spaces, texts, item_emb.shape[1])
    return tower_hits(spaces, queries, k, len(texts), exact)


def tower_hits(spaces: dict[str, TextSpace], queries: dict, k: int, n: int, index_of) -> Hits:
    """Each of ``n`` queries' top k over every space, merged by cosine; ``index_of(name,
    rows)`` is the inner-product index over a space's items (exact or approximate)."""
    merged: Hits = [[] for _ in range(n)]
    for name, space in spaces.items():
        found = top_rows(index_of(name, space.rows), queries[name], k, space.rows)
        for row, hits in zip(merged, found):
            row.extend(hits)
    return [sorted(row, key=lambda h: -h[1])[:k] for row in merged]
