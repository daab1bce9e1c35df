"""The fused query path's scoring (ace_core.retrieval.fusion): candidates from every
component, exact dense scores for each, weights fit on validation queries."""

from __future__ import annotations

import numpy as np
import pytest

from ace_core.retrieval import fusion as F

EMB = np.eye(6, dtype=np.float32)  # six items, each its own direction


def _dense_side(best_first: list[int], n_queries: int = 1) -> F.DenseSide:
    """A dense side whose query points at its rows in ``best_first`` order."""
    q = np.zeros((n_queries, 6), np.float32)
    for rank, row in enumerate(best_first):
        q[:, row] = 1.0 - 0.1 * rank
    hits = [[(r, float(q[0, r])) for r in best_first[:3]] for _ in range(n_queries)]
    return F.vector_side(hits, q, EMB)


def test_a_candidate_only_the_dense_side_finds_is_returned_with_its_exact_score():
    generated = {"captions": [[(0, np.log(0.6)), (1, np.log(0.3))]]}
    table = F.candidates(generated, {"dense": _dense_side([4, 0, 1])})
    assert table[0].rows.tolist() == [0, 1, 4]
    cap, dense = F.COMPONENTS.index("captions"), F.COMPONENTS.index("dense")
    assert np.allclose(table[0].features[:, cap], [0.6, 0.3, 0.0])
    assert np.allclose(table[0].features[:, dense], [0.5, 0.0, 1.0])  # min-max over candidates
    fusion = F.Fusion({"captions": 0.3, "dense": 0.7}, {"captions": 0.3, "dense": 0.7})
    hits = F.fused(table, fusion, np.ones(6, bool), k=2)
    assert [r for r, _ in hits[0]] == [4, 0]  # the item no beam generated comes first
    assert hits[0][0][1] == pytest.approx(0.7)


def test_uncaptioned_candidates_are_weighed_by_their_own_weights():
    generated = {"captions": [[(0, np.log(0.9))]]}
    table = F.candidates(generated, {"text_tower": _dense_side([5, 0])})
    fusion = F.Fusion({"captions": 1.0, "text_tower": 0.0}, {"text_tower": 1.0})
    captioned = np.array([True] * 5 + [False])
    assert [r for r, _ in F.fused(table, fusion, captioned, 2)[0]] == [5, 0]
    assert [r for r, _ in F.fused(table, fusion, np.ones(6, bool), 2)[0]] == [0, 5]


def test_the_fit_weighs_the_component_that_finds_the_item():
    """Validation queries whose beam is noise and whose dense side is right: the fit gives
    the dense side the weight, and the fused top-1 is then always right."""
    rng = np.random.default_rng(0)
    tables, gold = [], []
    for _ in range(40):
        g = int(rng.integers(6))
        others = [r for r in range(6) if r != g]
        noise = [int(x) for x in rng.permutation(others)[:2]]
        generated = {"captions": [[(noise[0], np.log(0.7)), (g, np.log(0.2))]]}
        tables += F.candidates(generated, {"dense": _dense_side([g, *noise])})
        gold.append(g)
    fit = F.fit_fusion(tables, gold, ["captions", "dense"], np.ones(6, bool))
    assert fit["weights"]["dense"] > fit["weights"]["captions"] and not fit["both_kinds"]
    assert sum(fit["weights"].values()) == pytest.approx(1.0)
    hits = F.fused(tables, F.Fusion.from_record(fit), np.ones(6, bool), 1)
    assert [h[0][0] for h in hits] == gold and fit["val_mrr@10"] == 1.0


def test_blinding_moves_the_gold_items_probability_to_the_others():
    table = F.candidates(
        {"captions": [[(0, np.log(0.5)), (1, np.log(0.25)), (2, np.log(0.25))]]},
        {"dense": _dense_side([0, 1, 2])},
    )[0]
    blind = F.blinded(table, 0)
    cap, dense = F.COMPONENTS.index("captions"), F.COMPONENTS.index("dense")
    assert np.allclose(blind.features[:, cap], [0.0, 0.5, 0.5])
    assert blind.features[0, dense] == 0.0 and table.features[0, dense] == 1.0


def test_blinding_normalises_the_other_candidates_bm25_and_dense_again():
    """A query of an item without captions: BM25's best other candidate scores 1 and the
    dense side spans 0 to 1 over the others, as the candidate table of such a query has it."""
    feats = np.zeros((3, len(F.COMPONENTS)), np.float32)
    bm25, dense = F.COMPONENTS.index("bm25"), F.COMPONENTS.index("dense")
    feats[:, bm25], feats[:, dense] = [1.0, 0.5, 0.25], [1.0, 0.6, 0.2]
    blind = F.blinded(F.Candidates(np.array([0, 1, 2]), feats), 0)
    assert np.allclose(blind.features[:, bm25], [0.0, 1.0, 0.5])
    assert np.allclose(blind.features[:, dense], [0.0, 1.0, 0.0])


def test_the_fit_finds_an_uncaptioned_scale_between_coarse_steps(monkeypatch):
    """Two validation queries of captioned item 0. In the first an uncaptioned candidate
    (item 1) has the towers' best score, so its scale must stay below item 0's weighted sum;
    in the second, once item 0 is blinded, it must beat a captioned neighbour (item 2). Only
    a scale in a window narrower than 0.1 ranks item 0 first in both (the old grid's steps
    of 0.1 around 1 missed every such window)."""
    tower, bm25 = F.COMPONENTS.index("text_tower"), F.COMPONENTS.index("bm25")

    def query(rows, towers, words):
        feats = np.zeros((len(rows), len(F.COMPONENTS)), np.float32)
        feats[:, tower], feats[:, bm25] = towers, words
        return F.Candidates(np.array(rows), feats)

    table = [query([0, 1], [0.97, 1.0], [0.97, 0.0]), query([0, 2], [1.0, 0.93], [1.0, 0.93])]
    captioned = np.array([True, False, True])
    fit = F.fit_fusion(table, [0, 0], ["captions", "text_tower", "bm25"], captioned)
    # every half ranks item 0 first but the first query blinded (item 1 outscores it there)
    assert fit["both_kinds"] and fit["val_mrr@10"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    monkeypatch.setattr(
        F, "UNCAPTIONED_SCALES", (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5)
    )
    coarse = F.fit_fusion(table, [0, 0], ["captions", "text_tower", "bm25"], captioned)
    assert coarse["val_mrr@10"] < fit["val_mrr@10"]


def test_without_the_captions_beam_items_without_captions_still_get_their_scale():
    """The fit without generative components (dense, towers, BM25) still scores every query
    blinded, so the uncaptioned scale is chosen by validation, not left at the grid's first."""
    tower, bm25 = F.COMPONENTS.index("text_tower"), F.COMPONENTS.index("bm25")

    def query(rows, towers, words):
        feats = np.zeros((len(rows), len(F.COMPONENTS)), np.float32)
        feats[:, tower], feats[:, bm25] = towers, words
        return F.Candidates(np.array(rows), feats)

    # item 0 (the gold) leads on the towers; captioned item 1 has a keyword match
    table = [query([0, 1], [1.0, 0.6], [0.0, 1.0])] * 4
    captioned = np.array([True, True, False])
    fit = F.fit_fusion(table, [0] * 4, ["text_tower", "bm25"], captioned)
    assert fit["both_kinds"] and fit["weights"] == {"text_tower": 1.0, "bm25": 0.0}
    # blinded, item 0 is an uncaptioned item and item 1 scores 0.6: only a scale above 0.6
    # puts item 0 first (before the fix: the grid's first scale, 0.2, and R@10 0 on them)
    assert fit["uncaptioned"]["text_tower"] > 0.6


def test_the_weight_grid_covers_the_simplex():
    grid = F.weight_grid(["captions", "dense", "text_tower"], step=0.1)
    assert len(grid) == 66 and np.allclose(grid.sum(axis=1), 1.0)  # C(12, 2)
    assert not grid[:, F.COMPONENTS.index("zero_shot")].any()


def test_default_weights_without_captions_rank_by_the_text_towers():
    fusion = F.default_fusion(["zero_shot", "text_tower"])
    assert fusion.weights == fusion.uncaptioned == {"zero_shot": 0.0, "text_tower": 1.0}
    captioned = F.default_fusion(["captions", "dense", "bm25"])
    assert captioned.weights == {"captions": 0.3, "dense": 0.3, "bm25": 0.3}
    assert captioned.uncaptioned == captioned.weights  # no towers: every candidate alike
    towers = F.default_fusion(["captions", "zero_shot", "dense", "text_tower"])
    assert towers.uncaptioned == {"captions": 0, "zero_shot": 0, "dense": 0, "text_tower": 0.7}


def test_bm25_over_training_captions_joins_the_candidates():
    """The lexical component: an item whose training captions share the query's rare word is
    a candidate with BM25 feature 1, and held-out captions are not in its documents."""
    from ace_core.retrieval.fused_search import _bm25_side, training_keywords

    paths = [f"images/img_{i}.png" for i in range(6)]
    train = [("a red circle", 0), ("a blue square", 1), ("a zebra crossing", 4)]
    keywords = training_keywords(paths, train + [])
    side = _bm25_side(keywords, ["zebra", "a green square"], np.arange(6), 3)
    assert [r for r, _ in side.hits[0]] == [4] and [r for r, _ in side.hits[1]] == [1]
    table = F.candidates({"captions": [[(0, np.log(0.9))], [(0, np.log(0.9))]]}, {"bm25": side})
    bm25 = F.COMPONENTS.index("bm25")
    assert table[0].rows.tolist() == [0, 4] and table[0].features[:, bm25].tolist() == [0.0, 1.0]
    held_out = training_keywords(paths, train)  # ("a zebra crossing" held out from item 2)
    assert held_out.scores("crossing")[2] == 0.0


def _word_corpus(n: int, seed: int = 0) -> list[str]:
    """Documents of common words (each in about half the rows) and a rare word or two."""
    rng = np.random.default_rng(seed)
    common = ["red", "blue", "circle", "square", "loud", "bird"]
    rare = [f"zebra{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(40)]
    return [
        " ".join([*rng.choice(common, 3), *rng.choice(rare, rng.integers(0, 3))]) for _ in range(n)
    ]


def test_above_the_exact_size_bm25_scores_any_rows_exactly_and_finds_rows_by_rare_words():
    """Past the exact size a query no longer scores every item (its cost would grow with the
    corpus): rare words find rows, and any row asked for gets exactly the full BM25 score."""
    from ace_core.retrieval.keywords import KeywordIndex

    docs = _word_corpus(400)
    exact = KeywordIndex(docs)
    pruned = KeywordIndex(docs, exact_max_items=100, scan_max_postings=40)
    assert exact.exact and not pruned.exact
    rng = np.random.default_rng(1)
    for text in ["red bird zebracb", "blue circle", "zebrada zebrada loud", "nothing here"]:
        every = exact.scores(text)
        rows = rng.choice(400, 60, replace=False)
        np.testing.assert_allclose(pruned.query(text, 10)[1](rows), every[rows], rtol=1e-5)
        hits, _ = pruned.query(text, 10)
        rare = [w for w in text.split() if w.startswith("zebra")]
        holders = [r for r, d in enumerate(docs) if set(rare) & set(d.split())]
        best = sorted((every[r] for r in holders), reverse=True)[:10]
        assert {r for r, _ in hits} <= set(holders)  # common words alone find nothing
        assert [s for _, s in hits] == pytest.approx(best, rel=1e-5)  # the holders' top, exact
        assert [s for _, s in hits] == pytest.approx([every[r] for r, _ in hits], rel=1e-5)
    allowed = np.zeros(400, bool)
    allowed[::2] = True
    assert all(r % 2 == 0 for r, _ in pruned.query("zebracb zebrada red", 50, allowed)[0])


def test_row_scores_do_not_rely_on_bm25s_keeping_its_posting_lists_in_row_order():
    from ace_core.retrieval.keywords import KeywordIndex

    docs = _word_corpus(300, seed=2)
    exact, pruned = KeywordIndex(docs), KeywordIndex(docs, exact_max_items=100)
    s, rng = pruned.retriever.scores, np.random.default_rng(3)
    for w in range(len(s["indptr"]) - 1):  # each word's (row, score) pairs shuffled together
        at = np.arange(s["indptr"][w], s["indptr"][w + 1])
        shuffled = rng.permutation(at)
        s["indices"][at], s["data"][at] = s["indices"][shuffled], s["data"][shuffled]
    rows = rng.choice(300, 80, replace=False)
    for text in ["red bird zebraab", "square square loud"]:
        got = pruned.query(text, 5)[1](rows)
        np.testing.assert_allclose(got, exact.scores(text)[rows], rtol=1e-5)


def test_above_the_exact_size_bm25_still_scores_the_other_components_candidates():
    from ace_core.retrieval import fusion as F
    from ace_core.retrieval.fused_search import _bm25_side
    from ace_core.retrieval.keywords import KeywordIndex

    docs = _word_corpus(300)
    pruned = KeywordIndex(docs, exact_max_items=100, scan_max_postings=40)
    side = _bm25_side(pruned, ["red circle"], np.arange(300), 5)
    assert side.hits == [[]]  # both words are in more than 40 rows
    common = next(r for r, d in enumerate(docs) if {"red", "circle"} <= set(d.split()))
    table = F.candidates({"captions": [[(common, np.log(0.9))]]}, {"bm25": side})
    bm25 = F.COMPONENTS.index("bm25")
    assert table[0].rows.tolist() == [common] and table[0].features[0, bm25] > 0


def test_above_the_exact_size_the_dense_index_is_ivf_and_finds_what_exact_search_finds(
    monkeypatch,
):
    """IVF over 8-bit codes, its shortlist scored on the float embeddings: the scores it returns
    are the exact inner products, best first."""
    import faiss

    from ace_core.retrieval import dense_index

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    emb = centres[rng.integers(50, size=5000)] + 0.3 * rng.standard_normal((5000, 32))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    queries, rows = emb[:40] + 0.05, np.arange(5000) * 2  # rows: any numbering of the items
    exact = dense_index.top_rows(dense_index.item_index(emb), queries, 10, rows)
    monkeypatch.setattr(dense_index, "EXACT_MAX", 1000)
    ivf = dense_index.item_index(emb)
    assert isinstance(ivf.index, faiss.IndexIVFScalarQuantizer)
    assert ivf.index.nprobe == dense_index.IVF_PROBES
    approx = dense_index.top_rows(ivf, queries, 10, rows)
    overlap = np.mean(
        [len({r for r, _ in a} & {r for r, _ in e}) / 10 for a, e in zip(approx, exact)]
    )
    assert overlap >= 0.9 and all(r % 2 == 0 for row in approx for r, _ in row)
    for q, row in zip(queries, approx):
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True)
        assert np.allclose(scores, [emb[r // 2] @ q for r, _ in row], atol=1e-5)


def test_past_the_sqrt_size_ivf_lists_keep_their_size_and_still_find_the_neighbours(
    monkeypatch,
):
    """At 1M items sqrt(n) lists would hold 1,000 items each; lists of a fixed size keep the
    rows a query scans about flat (here 100 lists of 50 instead of 70 of 71)."""
    from ace_core.retrieval import dense_index

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    emb = centres[rng.integers(50, size=5000)] + 0.3 * rng.standard_normal((5000, 32))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    exact = dense_index.top_rows(dense_index.item_index(emb), emb[:40], 10, np.arange(5000))
    monkeypatch.setattr(dense_index, "EXACT_MAX", 1000)
    monkeypatch.setattr(dense_index, "ITEMS_PER_LIST", 50)
    ivf = dense_index.item_index(emb)
    assert ivf.index.nlist == 100
    approx = dense_index.top_rows(ivf, emb[:40], 10, np.arange(5000))
    assert np.mean([len({r for r, _ in a} & {r for r, _ in e}) / 10
                    for a, e in zip(approx, exact)]) >= 0.9  # fmt: skip


def test_a_keyword_index_leaves_bm25s_quiet_on_a_users_terminal():
    """bm25s sets its own logger to DEBUG on import; every fused query printed a line."""
    import logging

    from ace_core.retrieval.keywords import KeywordIndex

    KeywordIndex(["a red circle", "a blue square"])
    assert logging.getLogger("bm25s").getEffectiveLevel() >= logging.WARNING


def test_the_fit_prefers_fewer_components_among_equals_and_says_when_validation_saturates():
    from ace_core.retrieval.fusion import COMPONENTS, Candidates, fit_fusion

    rows = np.array([0, 1])
    feats = np.zeros((2, len(COMPONENTS)), np.float32)
    feats[0, COMPONENTS.index("bm25")] = 1.0  # every component that scores, scores row 0 first
    feats[0, COMPONENTS.index("dense")] = 1.0
    table = [Candidates(rows, feats)] * 3
    present = ["dense", "text_tower", "bm25"]
    rec = fit_fusion(table, [0, 0, 0], present, np.ones(2, bool))
    assert rec["saturated"] and rec["val_mrr@10"] == 1.0
    assert sum(w > 0 for w in rec["weights"].values()) == 1  # one component is as good
