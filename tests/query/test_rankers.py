"""The rankers' registry (query/rankers/registry.py): the served paths and ace eval's keys come
from it, and every entry names a class that ranks."""

import importlib

import pytest

from ace_index.query.rankers import registry
from ace_index.query.request import PATHS, QueryError, checked_path


def test_every_entry_names_a_ranker_class_with_the_protocol():
    for entry in registry.RANKERS:
        module, cls = entry.where.split(":")
        ranker = getattr(importlib.import_module(module), cls)()
        assert callable(ranker.available) and callable(ranker.rank), entry.name
    assert len({e.name for e in registry.RANKERS}) == len(registry.RANKERS)
    with pytest.raises(KeyError):
        registry.ranker("no-such-ranker")


def test_the_served_paths_and_eval_keys_come_from_the_registry():
    assert PATHS == ("auto", "fused", "generative", "captions", "zero-shot", "both", "dense")
    assert [p for p in PATHS if p not in ("auto", "generative")] == list(registry.SERVED)
    assert registry.BASELINES == {"text_tower_dense": "towers", "dense": "dense", "bm25": "bm25"}
    assert all(checked_path(p) == p for p in PATHS)
    with pytest.raises(QueryError):
        checked_path("towers")  # a baseline, not a served path
