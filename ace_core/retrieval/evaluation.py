"""Evaluation protocol (no leakage) and retrieval metrics.

- *seen items* (corpora without splits): an item with >= 3 captions gives one held-out test
  query and one validation query; with 2, one test query; with 1, training only.
- *unseen items* (official splits): captions of test-split items are test queries only, of
  val-split items validation queries only; those items are indexed from their embeddings.
No test caption text is ever a training text: a training caption identical to any test query
(templates can repeat across items) is dropped from training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class QuerySplit:
    """(text, item index) pairs; item index = row in the version's sorted item list."""

    train: list[tuple[str, int]] = field(default_factory=list)
    val: list[tuple[str, int]] = field(default_factory=list)
    test: list[tuple[str, int]] = field(default_factory=list)
    protocol: str = "seen"  # seen | unseen

    def check_no_leakage(self) -> None:
        train_texts = {t for t, _ in self.train}
        leaked = [t for t, _ in self.test if t in train_texts]
        if leaked:
            raise AssertionError(
                f"{len(leaked)} test captions appear in training, e.g. {leaked[0]!r}"
            )


def _rank_key(seed: int, item_id: str, text: str) -> str:
    return hashlib.sha256(f"{seed}\x00{item_id}\x00{text}".encode()).hexdigest()


def split_queries(
    item_ids: Sequence[str], captions: Mapping[str, object], *, seed: int = 0
) -> QuerySplit:
    """Split captions per the protocol. ``captions``: item_id -> CaptionEntry-like
    (``.captions`` list, ``.split`` None or train/val/test)."""
    index = {i: n for n, i in enumerate(item_ids)}
    entries = [(i, captions[i]) for i in item_ids if i in captions]
    unseen = any(getattr(e, "split", None) for _, e in entries)
    out = QuerySplit(protocol="unseen" if unseen else "seen")
    for item_id, entry in entries:
        n = index[item_id]
        caps = list(dict.fromkeys(entry.captions))
        if unseen:
            role = entry.split or "train"
            getattr(out, role).extend((c, n) for c in caps)
            continue
        caps.sort(key=lambda c: _rank_key(seed, item_id, c))  # deterministic shuffle
        if len(caps) >= 3:
            out.test.append((caps[0], n))
            out.val.append((caps[1], n))
            out.train.extend((c, n) for c in caps[2:])
        elif len(caps) == 2:
            out.test.append((caps[0], n))
            out.train.append((caps[1], n))
        else:
            out.train.extend((c, n) for c in caps)
    held_out = {t for t, _ in out.test} | {t for t, _ in out.val}
    out.train = [(t, n) for t, n in out.train if t not in held_out]
    out.check_no_leakage()
    return out


def validation_order(m: dict) -> tuple[float, float]:
    """The order validation metrics are compared in (a fit keeps its best by it): MRR@10,
    then R@1."""
    return m["MRR@10"], m["R@1"]


def retrieval_metrics(ranked: Sequence[Sequence[int]], gold: Sequence[int]) -> dict:
    """R@1/5/10 and MRR@10 in [0, 1] for ranked item indices per query."""
    if len(gold) == 0:
        return {"R@1": None, "R@5": None, "R@10": None, "MRR@10": None}
    hits = {1: 0, 5: 0, 10: 0}
    rr = 0.0
    for res, g in zip(ranked, gold):
        res = list(res)[:10]
        if g in res:
            r = res.index(g) + 1
            rr += 1.0 / r
            for k in hits:
                hits[k] += r <= k
    n = len(gold)
    return {
        "R@1": round(hits[1] / n, 4),
        "R@5": round(hits[5] / n, 4),
        "R@10": round(hits[10] / n, 4),
        "MRR@10": round(rr / n, 4),
    }


def scored_sample(
    split: QuerySplit, max_val: int, max_test: int, seed: int, first: set[int]
) -> QuerySplit:
    """At most ``max_val`` validation and ``max_test`` test queries, a seeded sample (the
    queries of item rows in ``first``, e.g. an ingest's new items, kept first), so that
    scoring a large corpus costs a bounded number of beam searches."""
    return replace(
        split,
        val=sample_queries(split.val, max_val, seed, first),
        test=sample_queries(split.test, max_test, seed + 1, first),
    )


def sample_queries(pairs: list, limit: int, seed: int, first: set[int]) -> list:
    """``limit`` of the (text, row) pairs in their order: rows in ``first``, then a seeded
    sample of the others."""
    if len(pairs) <= limit:
        return pairs
    preferred = [n for n, (_, row) in enumerate(pairs) if row in first]
    others = [n for n, (_, row) in enumerate(pairs) if row not in first]
    rng = np.random.default_rng(seed)
    if len(preferred) >= limit:
        keep = rng.choice(preferred, limit, replace=False)
    else:
        keep = preferred + list(rng.choice(others, limit - len(preferred), replace=False))
    return [pairs[n] for n in sorted(int(k) for k in keep)]
