"""The rankers, in one list: each one's name, the module and class that implement it, whether
it is a served query path (``--path``, ``path=``), and its key in ``ace eval``'s output.

Light on purpose (the command line's parser reads the paths): a ranker's module is imported
when it first runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Entry:
    name: str  # the query path's name (``--path``), or the ranker's where it is not one
    where: str  # "module:Class"
    served: bool  # a query path people can ask for
    eval_key: str | None = None  # its key in ``ace eval`` (a baseline beside the served path)


RANKERS = (
    Entry("fused", "ace_index.query.rankers.fused:FusedRanker", served=True),
    Entry("captions", "ace_index.query.rankers.captions:CaptionsRanker", served=True),
    Entry("zero-shot", "ace_index.query.rankers.zero_shot:ZeroShotRanker", served=True),
    Entry("both", "ace_index.query.rankers.both:BothRanker", served=True),
    Entry("towers", "ace_index.query.rankers.towers:TextTowerRanker", False, "text_tower_dense"),
    Entry("dense", "ace_index.query.rankers.dense:DenseCaptionRanker", True, "dense"),
    Entry("bm25", "ace_index.query.rankers.bm25:KeywordsRanker", served=False, eval_key="bm25"),
)
SERVED = tuple(e.name for e in RANKERS if e.served)
BASELINES = {e.eval_key: e.name for e in RANKERS if e.eval_key}  # ace eval key -> ranker


@cache
def ranker(name: str):
    """The ranker called ``name`` (its module imported on first use)."""
    entry = next((e for e in RANKERS if e.name == name), None)
    if entry is None:
        raise KeyError(f"no ranker {name!r}")
    module, cls = entry.where.split(":")
    return getattr(importlib.import_module(module), cls)()
