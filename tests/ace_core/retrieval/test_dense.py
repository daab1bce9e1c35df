"""The dense caption baseline's training budget (issue 40 part 3): examples per item, as the
generative path's, with a cosine decay; versions built before it keep their step budget; its
logits in bfloat16 where the budget is long and the device native."""

import numpy as np
import pytest
import torch

import ace_core.retrieval.text_encoder as te
from ace_core.config_io import to_dict
from ace_core.index_config import IndexConfig
from ace_core.retrieval.dense import (
    DenseProjection,
    DenseTrainConfig,
    dense_precision,
    dense_search,
    dense_step_budget,
    train_dense,
)
from ace_core.retrieval.losses import info_nce
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


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_training_stops_at_the_budget_and_learns(precision):
    feats, rows, items = _world()
    cfg = DenseTrainConfig(
        examples_per_item=64,
        batch_size=16,
        patience=10**6,
        lr=1e-2,
        min_steps=0,
        precision=precision,
    )
    steps_seen = []
    torch.manual_seed(0)
    proj = DenseProjection(items.shape[1], items.shape[1])
    train_dense(proj, feats, rows, items, cfg, on_epoch=lambda e, s, m: steps_seen.append(s))
    assert steps_seen[-1] == dense_step_budget(cfg, len(items)) == 160  # 64 x 40 / 16
    assert steps_seen[0] == 0  # epoch 0: before the first, nothing resumed
    assert steps_seen == sorted(steps_seen) and len(steps_seen) == 17  # 10 steps an epoch
    top = [r[0][0] for r in dense_search(proj, feats, items, 1)]
    assert np.mean(np.array(top) == rows) > 0.9  # chance: 1/40


def test_a_version_built_before_the_budget_keeps_its_dense_training():
    before = config_from_manifest({"train": {"dense": {"epochs": 150, "lr": 0.003}}})
    assert before.train.dense.max_steps == 20_000
    assert before.train.dense.examples_per_item is None and not before.train.dense.lr_decay
    assert before.train.dense.precision == "float32"
    now = config_from_manifest(to_dict(IndexConfig()))
    assert now.train.dense == DenseTrainConfig()
    assert now.train.dense.examples_per_item == 160 and now.train.dense.lr_decay


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_only_where_the_budget_is_long_and_the_device_native(
    monkeypatch, native
):
    monkeypatch.setattr(te, "native_bfloat16", lambda device: native)
    cpu, cfg = torch.device("cpu"), DenseTrainConfig()
    assert dense_precision(cfg, 1_000, cpu) == "float32"  # the 5,000-step floor sets it
    assert dense_precision(cfg, 10_000, cpu) == ("bfloat16" if native else "float32")
    assert dense_precision(DenseTrainConfig(precision="bfloat16"), 1_000, cpu) == "bfloat16"
    assert dense_precision(DenseTrainConfig(precision="float32"), 10_000, cpu) == "float32"


@pytest.mark.parametrize("negatives", [None, 50])
def test_info_nce_over_bfloat16_candidates_is_float32_s_within_its_precision(negatives):
    """The logits' product in bfloat16 (every item, and a sample of negatives): the loss and
    the query's gradient within bfloat16's precision of float32's, the softmax in float32."""
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(200, 32, generator=g), dim=-1)
    items = torch.randint(0, 200, (16,), generator=g)
    q0 = torch.nn.functional.normalize(emb[items] + 0.5 * torch.randn(16, 32, generator=g), dim=-1)
    losses, grads = [], []
    for cands in (emb, emb.to(torch.bfloat16)):
        q = q0.clone().requires_grad_()
        torch.manual_seed(1)  # the same negatives
        loss = info_nce(q, cands, items, negatives, temperature=0.05)
        loss.backward()
        assert loss.dtype == torch.float32 and q.grad.dtype == torch.float32
        losses.append(loss.item())
        grads.append(q.grad)
    assert abs(losses[1] - losses[0]) < 0.02 * losses[0]
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1]).min() > 0.99
