import pytest

from ace_core.media.discovery import CaptionEntry
from ace_core.retrieval.evaluation import retrieval_metrics, split_queries


def test_seen_protocol_holds_out_test_and_val_captions():
    ids = ["a", "b", "c", "d"]
    caps = {
        "a": CaptionEntry(["a1", "a2", "a3", "a4"]),
        "b": CaptionEntry(["b1", "b2"]),
        "c": CaptionEntry(["c1"]),
    }
    s = split_queries(ids, caps, seed=0)
    assert s.protocol == "seen"
    assert sorted(n for _, n in s.test) == [0, 1] and [n for _, n in s.val] == [0]
    assert sorted(n for _, n in s.train) == [0, 0, 1, 2]
    assert {t for t, _ in s.test}.isdisjoint({t for t, _ in s.train})
    assert split_queries(ids, caps, seed=0).test == s.test  # deterministic


def test_identical_caption_text_of_another_item_never_leaks_into_training():
    ids = ["a", "b"]
    caps = {
        "a": CaptionEntry(["same words", "x", "y"]),
        "b": CaptionEntry(["same words", "p", "q"]),
    }
    for seed in range(20):
        s = split_queries(ids, caps, seed=seed)
        held = {t for t, _ in s.test} | {t for t, _ in s.val}
        assert held.isdisjoint({t for t, _ in s.train})


def test_unseen_protocol_uses_official_splits():
    ids = ["a", "b", "c"]
    caps = {
        "a": CaptionEntry(["a1", "a2"], "train"),
        "b": CaptionEntry(["b1", "b2"], "test"),
        "c": CaptionEntry(["c1"], "val"),
    }
    s = split_queries(ids, caps)
    assert s.protocol == "unseen"
    assert [n for _, n in s.train] == [0, 0] and [n for _, n in s.test] == [1, 1]
    assert [n for _, n in s.val] == [2]


def test_leakage_check_fails_loudly():
    from ace_core.retrieval.evaluation import QuerySplit

    with pytest.raises(AssertionError, match="test captions appear in training"):
        QuerySplit(train=[("t", 0)], test=[("t", 1)]).check_no_leakage()


def test_metrics_against_hand_computed_values():
    ranked = [[3, 1, 2], [0, 5, 6, 7, 8, 9], list(range(20, 40))]
    m = retrieval_metrics(ranked, [1, 9, 0])
    assert m == {
        "R@1": 0.0,
        "R@5": round(1 / 3, 4),
        "R@10": round(2 / 3, 4),
        "MRR@10": round((1 / 2 + 1 / 6) / 3, 4),
    }
    assert retrieval_metrics([], [])["R@1"] is None
