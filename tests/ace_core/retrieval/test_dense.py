"""The dense caption baseline's training budget (issue 40 part 3): examples per item, as the
generative path's, with a cosine decay; versions built before it keep their step budget."""

import numpy as np
import torch

from ace_core.config_io import to_dict
from ace_core.index_config import IndexConfig
from ace_core.retrieval.dense import (
    DenseProjection,
    DenseTrainConfig,
    dense_search,
    dense_step_budget,
    train_dense,
)
from ace_core.retrieval.text_features import TextFeatures
from ace_index.storage.formats.manifest import config_from_manifest


def test_the_budget_is_examples_per_item_at_least_min_steps_capped_by_max_steps():
    cfg = DenseTrainConfig(examples_per_item=160, batch_size=128)
    assert dense_step_budget(cfg, 10_000) == 12_500
    assert dense_step_budget(cfg, 1_000) == 5_000  # 1,250 by the examples: the floor
    assert dense_step_budget(DenseTrainConfig(min_steps=0), 1_000) == 1_250
    assert dense_step_budget(DenseTrainConfig(examples_per_item=160, max_steps=500), 10_000) == 500
    assert dense_step_budget(DenseTrainConfig(examples_per_item=None, max_steps=700), 10) == 700


def _world(n_items=40, per_item=4, dim=16, seed=0):
    """Pooled 'caption features' that are noisy copies of their item's direction."""
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    rows = np.repeat(np.arange(n_items), per_item)
    pooled = items[rows] + 0.3 * rng.standard_normal((len(rows), dim)).astype(np.float32)
    feats = TextFeatures([], np.zeros(len(rows)), np.zeros(len(rows)), np.ones(len(rows)), pooled)
    return feats, rows, items


def test_training_stops_at_the_budget_and_learns():
    feats, rows, items = _world()
    cfg = DenseTrainConfig(
        examples_per_item=64, batch_size=16, patience=10**6, lr=1e-2, min_steps=0
    )
    steps_seen = []
    torch.manual_seed(0)
    proj = DenseProjection(items.shape[1], items.shape[1])
    train_dense(proj, feats, rows, items, cfg, on_epoch=lambda e, s, m: steps_seen.append(s))
    assert steps_seen[-1] == dense_step_budget(cfg, len(items)) == 160  # 64 x 40 / 16
    assert steps_seen == sorted(steps_seen) and len(steps_seen) == 16  # 10 steps an epoch
    top = [r[0][0] for r in dense_search(proj, feats, items, 1)]
    assert np.mean(np.array(top) == rows) > 0.9  # chance: 1/40


def test_a_version_built_before_the_budget_keeps_its_dense_training():
    before = config_from_manifest({"train": {"dense": {"epochs": 150, "lr": 0.003}}})
    assert before.train.dense.max_steps == 20_000
    assert before.train.dense.examples_per_item is None and not before.train.dense.lr_decay
    now = config_from_manifest(to_dict(IndexConfig()))
    assert now.train.dense == DenseTrainConfig()
    assert now.train.dense.examples_per_item == 160 and now.train.dense.lr_decay
