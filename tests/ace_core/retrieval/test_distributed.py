"""Data-parallel training (ace_core.retrieval.distributed): 2 DDP workers on this machine,
launched with torchrun's semantics, learn as well as 1 worker at the same examples per item;
the payload round-trips; batches are shared out evenly."""

import itertools

import numpy as np
import pytest

from ace_core.ids.kmeans import KMeansConfig
from ace_core.ids.rqvae import RQVAEConfig
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
from ace_core.media.discovery import CaptionEntry
from ace_core.retrieval.dense import DenseTrainConfig
from ace_core.retrieval.fit import fit_retrieval
from ace_core.retrieval.generation import generative_search
from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.parallel import shard
from ace_core.retrieval.training import TrainConfig

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "star", "triangle", "ring", "cross"]
TEMPLATES = [
    "a {c} {s}",
    "one {s} that is {c}",
    "picture of a {c} {s}",
    "{c} coloured {s}",
    "the {s} is {c}",
]


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    base_c, base_s = rng.standard_normal((8, 32)), rng.standard_normal((6, 32))
    ids, emb, caps = [], [], {}
    for n, (c, s) in enumerate(itertools.product(COLORS, SHAPES)):
        ids.append(f"{n:064x}")
        emb.append(
            base_c[COLORS.index(c)] + base_s[SHAPES.index(s)] + 0.1 * rng.standard_normal(32)
        )
        caps[ids[-1]] = CaptionEntry([t.format(c=c, s=s) for t in TEMPLATES])
    x = l2n(np.asarray(emb, np.float32))
    config = SemanticIDConfig(
        kmeans=KMeansConfig(k=6), rqvae=RQVAEConfig(levels=2, codebook_size=8, max_epochs=5)
    )
    indexer, sids = fit_semantic_ids(ids, x, config)
    return ids, x, sids, indexer, caps


def _fit(world, workers: int):
    ids, x, sids, indexer, caps = world
    train = TrainConfig(
        examples_per_item=60,
        eval_every=1,
        patience=100,
        workers=workers,
        dense=DenseTrainConfig(epochs=1),
    )
    return fit_retrieval(
        ids,
        x,
        sids,
        indexer,
        caps,
        device="cpu",
        train=train,
        config=RetrieverConfig(d_model=32, n_layers=1),
    )


def _test_hits(fit) -> np.ndarray:
    """1 where the held-out caption's top result (pure generation) is its item, else 0."""
    texts, gold = [t for t, _ in fit.split.test], [g for _, g in fit.split.test]
    model = fit.model
    found = generative_search(model.decoder, model.features(texts), model.trie, 10, 1)
    return np.array([bool(f) and f[0][0] == g for f, g in zip(found, gold)], float)


def _interval(hits: np.ndarray, rng) -> tuple[float, float]:
    boots = hits[rng.integers(len(hits), size=(2000, len(hits)))].mean(axis=1)
    return tuple(np.percentile(boots, [2.5, 97.5]))


def test_two_workers_learn_as_well_as_one_at_the_same_examples(world):
    one, two = _fit(world, 1), _fit(world, 2)
    r1, r2 = one.generative_report, two.generative_report
    assert r2.budget_steps * 2 == pytest.approx(r1.budget_steps, abs=2)  # a step: 2 batches
    assert r2.examples == pytest.approx(r1.examples, rel=0.1)  # the same examples per item
    lo, hi = _interval(_test_hits(one), np.random.default_rng(0))
    assert lo <= _test_hits(two).mean() <= hi  # within 1 worker's 95% interval
    assert _test_hits(two).mean() > 0.3  # learnt (chance: 1/48)
    assert r2.best_val is not None and r2.history  # validated and reported, through rank 0


def test_batches_are_shared_out_evenly():
    batches = list(range(11))
    parts = [shard(batches, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert sorted(sum(parts, [])) == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert shard(batches, 0, 1) == batches
