"""The fused path's searches: every component's candidates for a batch of queries, fused
(ace_core.retrieval.fusion), and the fit of a version's fusion weights on its validation
queries. The query side (query.rankers.fused) and the build (tasks.build) both come through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ace_core.media.modalities import SPACE_OF_MODALITY
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense_index import item_index, top_rows
from ace_core.retrieval.fusion import (
    COMPONENTS,
    GENERATIVE,
    Candidates,
    DenseSide,
    Fusion,
    candidates,
    fit_fusion,
    fused,
    spaced_side,
    vector_side,
)
from ace_core.retrieval.generation import generative_search
from ace_core.retrieval.keywords import KeywordIndex, item_document, row_mask
from ace_core.retrieval.retrieval_model import RetrievalModel
from ace_core.retrieval.zero_shot import (
    TextSpace,
    text_spaces,
    tower_hits,
    tower_queries,
    zero_shot_search,
)


@dataclass
class FusedInputs:
    """What the fused path searches: the model, the rows and trie of the items that may be
    returned, the towers' text spaces over them (empty: no usable towers), whether the
    caption-trained components run, and which rows had training captions."""

    model: RetrievalModel
    rows: np.ndarray  # int64 rows of the model's items that may be returned
    trie: Trie  # over those rows' IDs; leaf i is rows[i]
    spaces: dict[str, TextSpace]
    with_captions: bool
    captioned: np.ndarray  # bool per row of the model's items
    space_of_row: np.ndarray  # the item space (str) of each row of the model's items
    indexes: dict = field(default_factory=dict)  # dense side -> faiss index, built on first use
    keywords: KeywordIndex | None = None  # BM25 over training captions and file names (rows)

    def index(self, name: str, rows: np.ndarray):
        """The dense index of ``name`` (``dense``: over ``rows``; a space: over its rows)."""
        if name not in self.indexes:
            self.indexes[name] = item_index(self.model.item_emb[rows])
        return self.indexes[name]

    @property
    def present(self) -> list[str]:
        caption_side = ["captions", "dense"] if self.with_captions else []
        tower_side = ["zero_shot", "text_tower"] if self.spaces else []
        lexical = ["bm25"] if self.keywords is not None else []
        return [c for c in COMPONENTS if c in caption_side + tower_side + lexical]


def corpus_inputs(
    model: RetrievalModel,
    modalities: Sequence[str],
    paths: Sequence[str],
    towers: dict | None,
    train: Sequence[tuple[str, int]],
    with_captions: bool,
) -> FusedInputs:
    """The fused inputs over every item of ``model``, as a build's fusion fit and the
    benches search them: the towers' text spaces (none without ``towers``), the rows with
    training captions ``train`` (text, row), and (``with_captions``) BM25 over those
    captions and the items' ``paths``."""
    n = len(model.item_ids)
    spaces = text_spaces(modalities, model.id_tokens, towers, model.trie_of) if towers else {}
    return FusedInputs(
        model,
        np.arange(n),
        model.trie,
        spaces,
        with_captions,
        trained_rows(n, train),
        spaces_of_rows(modalities),
        keywords=training_keywords(paths, train) if with_captions else None,
    )


def component_table(
    inp: FusedInputs, texts: list[str], depth: int, beam: int, only: Sequence[str] | None = None
) -> list[Candidates]:
    """Each query's candidates (the top ``depth`` of every component, or of ``only``) and
    their features."""
    run = set(inp.present if only is None else only) & set(inp.present)
    model, rows = inp.model, inp.rows
    depth = min(depth, len(rows))
    generated, dense = {}, {}
    feats = model.features(texts) if run & {"captions", "dense"} else None
    if "captions" in run:
        found = generative_search(model.decoder, feats, inp.trie, beam, depth, device=model.device)
        generated["captions"] = _to_rows(found, rows)
    if "dense" in run:
        with torch.no_grad():
            q = model.dense(feats.pooled).numpy().astype(np.float32)
        dense["dense"] = vector_side(
            top_rows(inp.index("dense", rows), q, depth, rows), q, model.item_emb
        )
    if run & {"zero_shot", "text_tower"}:
        queries = tower_queries(inp.spaces, texts, model.item_emb.shape[1])
        if "zero_shot" in run:
            generated["zero_shot"] = zero_shot_search(
                model.decoder,
                inp.spaces,
                texts,
                model.item_emb.shape[1],
                depth,
                beam,
                device=model.device,
                queries=queries,
            )
        if "text_tower" in run:
            hits = tower_hits(inp.spaces, queries, depth, len(texts), inp.index)
            dense["text_tower"] = spaced_side(hits, queries, inp.space_of_row, model.item_emb)
    if "bm25" in run:
        dense["bm25"] = _bm25_side(inp.keywords, texts, rows, depth)
    return candidates(generated, dense)


def _bm25_side(keywords: KeywordIndex, texts: list[str], rows: np.ndarray, depth: int) -> DenseSide:
    """BM25's top ``depth`` among ``rows`` (positive scores only) and its score of any row."""
    allowed = None if len(rows) == keywords.n else row_mask(keywords.n, rows)
    answers = [keywords.query(t, depth, allowed) for t in texts]
    return DenseSide([hits for hits, _ in answers], lambda n, r: answers[n][1](r))


def training_keywords(paths: Sequence[str], train: Sequence[tuple[str, int]]) -> KeywordIndex:
    """BM25 over each item's file name and training captions (``paths`` in row order): the
    fused path's lexical component and the BM25 baseline (held-out captions never enter)."""
    captions: dict[int, list[str]] = {}
    for text, row in train:
        captions.setdefault(row, []).append(text)
    return KeywordIndex([item_document(p or "", captions.get(n, [])) for n, p in enumerate(paths)])


def trained_rows(n: int, train: Sequence[tuple[str, int]]) -> np.ndarray:
    """Per row of ``n`` items: has training captions (a (text, row) pair in ``train``)."""
    out = np.zeros(n, bool)
    out[[row for _, row in train]] = True
    return out


def spaces_of_rows(modalities: Sequence[str]) -> np.ndarray:
    """The item space of each row, from the rows' modalities."""
    return np.array([SPACE_OF_MODALITY[m] for m in modalities])


def _to_rows(found, rows: np.ndarray):
    return [[(int(rows[i]), s) for i, s in row] for row in found]


def fused_search(
    inp: FusedInputs, texts: list[str], k: int, fusion: Fusion, beam: int, depth: int = 0
) -> tuple[list[list[tuple[int, float]]], list[Candidates]]:
    """Top-k (row, fused score) per query, and the candidate tables (score components). A
    generative path without weight in either set is not run (its beam search is the costly
    part; its candidates would be scored by the others only); the dense sides always run, so
    every query gets k candidates even where no word of it is in a caption."""
    skipped = {c for c in GENERATIVE if not (fusion.weights.get(c) or fusion.uncaptioned.get(c))}
    run = [c for c in inp.present if c not in skipped]
    if not set(run) - {"bm25"}:
        run = inp.present  # nothing else would give k candidates
    table = component_table(inp, texts, max(depth, k, beam), beam, run)
    return fused(table, fusion, inp.captioned, k), table


def fit_version_fusion(
    inp: FusedInputs,
    val: Sequence[tuple[str, int]],
    beam: int,
    depth: int = 10,
    without: Sequence[str] = (),
) -> dict | None:
    """The fusion record of a version fit on its validation (text, row) queries; None when
    it has none, or only one component to weigh. ``without``: components left out (the
    benches' fused path without its generative components)."""
    present = [c for c in inp.present if c not in without]
    if not val or len(present) < 2:
        return None
    table = component_table(inp, [t for t, _ in val], max(depth, beam), beam, present)
    return fit_fusion(table, [g for _, g in val], present, inp.captioned)
