"""The fused default path over a built version: its weights come from the manifest, and a
version built before fusion (no weights) still answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ace_core.retrieval.fusion import COMPONENTS
from ace_index.query.loaded import NO_FILTERS, load_version
from ace_index.query.rankers.base import rank
from ace_index.query.search import search_version
from ace_index.storage.store import Store

TEXTS = ["a red circle", "a loud high tone", "a blue square at the top"]


def test_the_build_fits_weights_and_the_manifest_keeps_them(store):
    manifest = Store(str(store)).manifest()
    fusion = manifest["fusion"]
    assert set(fusion["weights"]) == {"captions", "dense", "bm25"}  # random towers: no tower side
    assert sum(fusion["weights"].values()) == pytest.approx(1.0)
    assert fusion["queries"] == manifest["eval"]["queries"]["val"] and 0 <= fusion["val_mrr@10"]
    assert load_version(str(store)).fusion == fusion


def test_the_fused_order_follows_the_weights_it_reads(store):
    vm = load_version(str(store))
    dense = rank(vm, "dense", TEXTS, 5).hits
    vm.fusion = {"weights": {"dense": 1.0}, "uncaptioned": {"dense": 1.0}}
    hits = rank(vm, "fused", TEXTS, 5).hits
    assert [[r for r, _ in row] for row in hits] == [[r for r, _ in row] for row in dense]
    vm.fusion = {"weights": {"captions": 1.0}, "uncaptioned": {"captions": 1.0}}
    captions = rank(vm, "captions", TEXTS, 5).hits
    hits = rank(vm, "fused", TEXTS, 5).hits
    assert [row[0][0] for row in hits] == [row[0][0] for row in captions]


def test_a_version_without_weights_still_answers(store):
    vm = load_version(str(store))
    vm.fusion = None  # as a version published before the fused path
    answer = search_version(vm, TEXTS, 4)
    assert answer.path == "fused" and all(len(row) == 4 for row in answer.results)
    assert all(set(r["components"]) == set(COMPONENTS) for r in answer.results[0])
    pure = search_version(vm, TEXTS, 4, path="generative")
    assert pure.path == "captions" and "components" not in pure.results[0][0]


def test_a_query_no_caption_shares_a_word_with_still_gets_k_results(store):
    """Weights on BM25 alone (a fit can end there): the dense sides still run, so a query
    whose words are in no caption still gets k results; unweighted beams are skipped."""
    vm = load_version(str(store))
    vm.fusion = {"weights": {"bm25": 1.0}, "uncaptioned": {"bm25": 1.0}}
    ranked = rank(vm, "fused", ["zyzzyva quokka"], 4)
    hits, tables = ranked.hits, ranked.tables
    assert len(hits[0]) == 4
    captions = COMPONENTS.index("captions")
    assert not tables[0].features[:, captions].any()  # the unweighted beam did not run


def test_a_loaded_version_splits_its_captions_once(store):
    vm = load_version(str(store))
    split = vm.held_out_queries()
    assert vm.held_out_queries() is split and split.train and split.val


@pytest.mark.parametrize("modality", [None, "audio"])
def test_the_dense_path_is_exact_search_over_an_index_built_once(store, modality):
    """``--path dense`` (the dense caption baseline) ranks by the exact inner product of the
    projected query with each item that passes, and builds its index once per item subset."""
    vm = load_version(str(store))
    rows, _ = vm.subset(modality)
    first = rank(vm, "dense", TEXTS, 4, modality).hits
    index = vm.cache.dense_indexes[(modality, NO_FILTERS)]["exact"]
    assert rank(vm, "dense", TEXTS, 4, modality).hits == first
    assert vm.cache.dense_indexes[(modality, NO_FILTERS)]["exact"] is index
    with torch.no_grad():
        q = vm.model.dense(vm.model.features(TEXTS).pooled).numpy()
    scores = q @ vm.model.item_emb[rows].T
    for row, s in zip(first, scores):
        assert [r for r, _ in row] == rows[np.argsort(-s, kind="stable")[:4]].tolist()
        assert np.allclose([v for _, v in row], np.sort(s)[::-1][:4], atol=1e-5)
