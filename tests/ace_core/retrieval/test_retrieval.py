"""End-to-end retriever training on a small synthetic set (real MiniLM, small decoder)."""

import itertools

import numpy as np
import pytest

from ace_core.ids.kmeans import KMeansConfig
from ace_core.ids.rqvae import RQVAEConfig
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
from ace_core.media.discovery import CaptionEntry
from ace_core.retrieval.dense import DenseTrainConfig, dense_search
from ace_core.retrieval.fit import fit_retrieval
from ace_core.retrieval.generation import generative_search, search_by_embedding
from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.training import TrainConfig

COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "star", "triangle"]
TEMPLATES = [
    "a {c} {s}",
    "one {s} that is {c}",
    "picture of a {c} {s}",
    "{c} coloured {s}",
    "the {s} is {c}",
]


def generate(model, texts, k, beam=10):
    """Top-k (row, score) per query through the caption path's trie-constrained beam search."""
    return generative_search(model.decoder, model.features(texts), model.trie, beam, k)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    combos = list(itertools.product(COLORS, SHAPES))
    base_c = rng.standard_normal((len(COLORS), 32))
    base_s = rng.standard_normal((len(SHAPES), 32))
    ids, emb, caps = [], [], {}
    for n, (c, s) in enumerate(combos):
        item = f"{n:064x}"
        ids.append(item)
        emb.append(
            base_c[COLORS.index(c)] + base_s[SHAPES.index(s)] + 0.1 * rng.standard_normal(32)
        )
        if n % 6 != 5:  # every sixth item has no captions
            caps[item] = CaptionEntry([t.format(c=c, s=s) for t in TEMPLATES])
    x = l2n(np.asarray(emb, np.float32))
    indexer, sids = fit_semantic_ids(
        ids,
        x,
        SemanticIDConfig(
            kmeans=KMeansConfig(k=4), rqvae=RQVAEConfig(levels=2, codebook_size=8, max_epochs=5)
        ),
    )
    fit = fit_retrieval(
        ids,
        x,
        sids,
        indexer,
        caps,
        device="cpu",
        config=RetrieverConfig(d_model=64, n_layers=1),
        train=TrainConfig(
            epochs=60, eval_every=10, patience=60, examples_per_item=None,
            dense=DenseTrainConfig(epochs=60),
        ),
    )
    return ids, x, sids, caps, fit


def test_training_learns_to_generate_ids_of_held_out_captions(toy):
    _, _, _, _, fit = toy
    ev = fit.eval
    assert ev["queries"]["test"] == 20 and ev["queries"]["val"] == 20
    assert ev["generative"]["R@10"] >= 0.6  # chance is 10/24
    assert ev["generative"]["R@1"] >= 0.3  # chance is 1/24
    assert fit.generative_report.best_epoch >= 1


def test_captionless_items_are_generated_from_their_embedding(toy):
    ids, x, _, caps, fit = toy
    rows = [i for i, item in enumerate(ids) if item not in caps]
    res = search_by_embedding(fit.model.decoder, x[rows], fit.model.trie, beam=5, k=5)
    top5 = sum(row in [i for i, _ in r] for r, row in zip(res, rows))
    top1 = sum(r[0][0] == row for r, row in zip(res, rows))
    assert top5 == len(rows) and top1 >= len(rows) // 2  # chance: 5/24 and 1/24


def test_results_are_distinct_items_from_the_index(toy):
    _, _, _, _, fit = toy
    res = generate(fit.model, ["a blue star", "green square"], k=8)
    for r in res:
        items = [i for i, _ in r]
        assert len(items) == 8 == len(set(items)) and all(0 <= i < 24 for i in items)


def test_save_load_round_trip_gives_the_same_results(toy, tmp_path):
    from ace_index.storage.formats.retriever import load_retriever, save_retriever

    ids, x, sids, _, fit = toy
    save_retriever(
        fit.model,
        tmp_path / "retriever",
        fit.model.config.encoder_path
        or __import__("ace_core.retrieval.text_encoder", fromlist=["x"]).default_encoder_path(),
    )
    loaded = load_retriever(tmp_path / "retriever", ids, x, sids.tokens(), device="cpu")
    q = ["a purple triangle", "orange circle", "the star is yellow"]
    assert generate(loaded, q, k=5) == generate(fit.model, q, k=5)
    dense = [dense_search(m.dense, m.features(q), m.item_emb, 5) for m in (loaded, fit.model)]
    assert dense[0] == dense[1]


def test_a_fit_records_its_text_precision_and_older_retrievers_load_in_float32(
    toy, tmp_path, monkeypatch
):
    """The saved config holds the precision the fit resolved (never ``auto``); a retriever
    saved before bfloat16 text features (its config lacks the key) loads in float32, and so
    does one trained in bfloat16 on a device that would only emulate it."""
    import json

    from ace_core.retrieval import text_encoder
    from ace_core.retrieval.text_encoder import default_encoder_path, resolved_precision
    from ace_index.storage.formats.retriever import (
        load_retriever,
        load_retriever_state,
        save_retriever,
    )

    ids, x, sids, _, fit = toy
    assert fit.model.config.text_precision == resolved_precision("auto", "cpu")
    assert fit.model.encoder.precision == fit.model.feature_spec.precision
    save_retriever(fit.model, tmp_path / "r", default_encoder_path())
    meta_file = tmp_path / "r" / "config.json"
    meta = json.loads(meta_file.read_text())
    assert meta["config"]["text_precision"] == fit.model.config.text_precision
    parent = load_retriever_state(tmp_path / "r")  # what an ingest fine-tunes from
    assert parent.text_precision == fit.model.config.text_precision
    del meta["config"]["text_precision"]
    meta_file.write_text(json.dumps(meta))
    assert load_retriever_state(tmp_path / "r").text_precision == "float32"
    old = load_retriever(tmp_path / "r", ids, x, sids.tokens(), device="cpu")
    assert old.config.text_precision == old.encoder.precision == "float32"
    assert old.feature_spec.key == fit.model.feature_spec.key.removesuffix("-bf16")
    meta["config"]["text_precision"] = "bfloat16"  # trained where bfloat16 is native,
    meta_file.write_text(json.dumps(meta))  # served where it would be emulated: float32
    monkeypatch.setattr(text_encoder, "native_bfloat16", lambda device: False)
    moved = load_retriever(tmp_path / "r", ids, x, sids.tokens(), device="cpu")
    assert moved.config.text_precision == moved.encoder.precision == "float32"


def test_training_is_deterministic_for_a_seed(toy):
    ids, x, sids, caps, fit = toy
    from ace_core.ids.semantic_ids import SemanticIndexer

    def once():
        indexer = SemanticIndexer(SemanticIDConfig(), np.zeros((4, 32), np.float32), None, 8)
        return fit_retrieval(
            ids,
            x,
            sids,
            indexer,
            caps,
            device="cpu",
            config=RetrieverConfig(d_model=32, n_layers=1),
            train=TrainConfig(epochs=3, eval_every=3, dense=DenseTrainConfig(epochs=3)),
        )

    import torch

    a = once()
    torch.rand(13)  # whatever the process drew before a build must not change what it trains
    b = once()
    q = ["a red star", "green circle"]
    assert generate(a.model, q, k=5) == generate(b.model, q, k=5)
    assert a.generative_report.history == b.generative_report.history
    dense = [dense_search(m.dense, m.features(q), m.item_emb, 5) for m in (a.model, b.model)]
    assert dense[0] == dense[1]  # the dense baseline too (its projection drew from it before)
    assert a.eval["dense"] == b.eval["dense"]


def test_ingest_replay_trains_every_new_entry_each_epoch_and_revisits_old_ones():
    import torch

    from ace_core.retrieval.evaluation import QuerySplit
    from ace_core.retrieval.fine_tune import REPLAY_MIN, replay_sample

    n_items, new_rows = 400, set(range(390, 400))
    split = QuerySplit(train=[(f"caption {i} {j}", i) for i in range(n_items) for j in range(2)])
    sub, replay = replay_sample(split, new_rows, n_items, ratio=2.0, epochs=3, seed=0)
    new_pairs = [p for p in sub.train if p[1] in new_rows]
    assert len(new_pairs) == 20 and sub.train[:20] == new_pairs
    assert len(sub.train) == 20 + 3 * REPLAY_MIN  # the old pool: what 3 epochs can draw
    assert set(sub.train) <= set(split.train)
    gen = torch.Generator().manual_seed(0)
    seen_caps, seen_rows = set(), set()
    for _ in range(3):
        caps, rows = replay.draw(gen)
        assert set(range(20)) <= set(caps.tolist()) and len(caps) == 20 + REPLAY_MIN
        assert new_rows <= set(rows.tolist()) and len(rows) == 10 + REPLAY_MIN
        assert len(set(rows.tolist())) == len(rows)  # no row twice within an epoch
        seen_caps |= set(caps.tolist()) - set(range(20))
        seen_rows |= set(rows.tolist()) - new_rows
    assert len(seen_caps) > REPLAY_MIN and len(seen_rows) > REPLAY_MIN  # not the same draw
    again = replay.draw(torch.Generator().manual_seed(0))
    first = replay.draw(torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(again, first))  # seeded


def test_an_ingest_of_captionless_items_publishes_weights_that_know_them(toy):
    """Validation sees only old items' captions here; the parent's weights (which never saw
    the new items) must not win the checkpoint choice, or the new items are unreachable. (A
    decoder without tied vectors: a tied one finds an item by its embedding before training,
    tests/ace_core/retrieval/test_tied.py.)"""
    from dataclasses import replace

    from ace_core.retrieval.fine_tune import IngestConfig, InitState

    ids, x, sids, caps, fit = toy
    new = [n for n, i in enumerate(ids) if i not in caps]
    small = RetrieverConfig(d_model=64, n_layers=1, tied=False)
    parent = fit_retrieval(
        ids, x, sids, toy_indexer(toy), caps, device="cpu", config=small,
        train=TrainConfig(epochs=30, eval_every=10, index_task=False, examples_per_item=None,
                          dense=DenseTrainConfig(epochs=2)),
    )  # fmt: skip
    rows = np.asarray(new)

    def known(model) -> float:
        hits = search_by_embedding(model.decoder, x[rows], model.trie, beam=5, k=1)
        return float(np.mean([h[0][0] == r for h, r in zip(hits, rows)]))

    init = InitState(
        decoder=parent.model.decoder.state_dict(),
        dense=parent.model.dense.state_dict(),
        vocab=parent.model.vocab,
        item_ids={i for i in ids if i in caps},
    )
    child = fit_retrieval(
        ids, x, sids, toy_indexer(toy), caps, device="cpu", config=small,
        train=TrainConfig(epochs=30, dense=DenseTrainConfig(epochs=2)), init=init,
        ingest=replace(IngestConfig(), epochs=12, eval_every=4),
    )  # fmt: skip
    assert child.generative_report.best_epoch > 0
    assert known(child.model) > known(parent.model)


def toy_indexer(toy):
    ids, x, sids, _, _ = toy
    indexer, again = fit_semantic_ids(
        ids,
        x,
        SemanticIDConfig(
            kmeans=KMeansConfig(k=4), rqvae=RQVAEConfig(levels=2, codebook_size=8, max_epochs=5)
        ),
    )
    assert again.sids == sids.sids  # deterministic: the same IDs as the fixture's
    return indexer


def test_the_parent_competes_with_a_fine_tune_only_when_validation_sees_new_items():
    from ace_core.retrieval.evaluation import QuerySplit
    from ace_core.retrieval.fit import _start_is_a_candidate

    split = QuerySplit(train=[("a", 0), ("b", 2)], val=[("c", 0)], test=[("d", 0)])
    assert not _start_is_a_candidate(None, split, {2})  # a full build has no parent
    assert not _start_is_a_candidate(object(), split, {2})  # new item 2: no val caption
    assert _start_is_a_candidate(object(), split, {0, 2})


def test_a_step_budget_caps_both_models_and_is_reported(toy):
    ids, x, sids, caps, full = toy
    from ace_core.ids.semantic_ids import SemanticIndexer

    indexer = SemanticIndexer(SemanticIDConfig(), np.zeros((4, 32), np.float32), None, 8)
    epochs, budget = 4, 7

    def fit(max_steps):
        return fit_retrieval(
            ids, x, sids, indexer, caps, device="cpu",
            config=RetrieverConfig(d_model=32, n_layers=1),
            train=TrainConfig(
                epochs=epochs, eval_every=2, max_steps=max_steps, examples_per_item=None,
                dense=DenseTrainConfig(epochs=epochs, max_steps=max_steps),
            ),
        )  # fmt: skip

    uncapped, capped = fit(None), fit(budget)
    per_epoch = uncapped.generative_report.steps // epochs
    assert budget < uncapped.generative_report.steps and budget % per_epoch  # binds mid-epoch
    assert capped.generative_report.steps == budget
    assert capped.generative_report.epochs == -(-budget // per_epoch)  # the last one partial
    record = capped.eval_record()["training"]
    assert record["steps"] == capped.generative_report.steps
    assert record["examples_per_second"] > 0
    assert list(record["phase_seconds"]) == [
        "text_features", "generative_training", "dense_training", "test_metrics"
    ]  # fmt: skip


def test_scored_queries_are_a_seeded_sample_with_new_items_first():
    from ace_core.retrieval.evaluation import sample_queries

    pairs = [(f"q{n}", n) for n in range(100)]
    a = sample_queries(pairs, 10, 0, {97, 98, 99})
    assert a == sample_queries(pairs, 10, 0, {97, 98, 99}) and len(a) == 10
    assert {97, 98, 99} <= {row for _, row in a}
    assert a == sorted(a, key=lambda p: p[1])  # the split's order is kept
    assert sample_queries(pairs, 200, 0, set()) == pairs
    assert {row for _, row in sample_queries(pairs, 2, 0, {5, 6, 7})} <= {5, 6, 7}


def test_an_ingest_scores_and_fine_tunes_on_its_own_bounded_settings():
    from ace_core.retrieval.fine_tune import IngestConfig

    full = TrainConfig()
    tuned = IngestConfig().fine_tune(full)
    assert (tuned.max_val_queries, tuned.max_test_queries) == (256, 500)
    assert tuned.epochs == tuned.dense.epochs == 12 < full.dense.epochs
    assert tuned.max_steps == full.max_steps


@pytest.mark.parametrize("pooled", [False, True])
def test_caption_features_do_not_depend_on_the_batch_they_were_encoded_in(pooled):
    """Each text is kept at its own length (float16), so the batch it was padded in does not
    show: small batches and one large batch give the same features."""
    import torch

    from ace_core.retrieval.text_encoder import build_text_encoder
    from ace_core.retrieval.text_features import FeatureSpec, TextFeatures

    enc, tok, _ = build_text_encoder(RetrieverConfig(text_precision="float32"))
    texts = [t.format(c=c, s=s) for t in TEMPLATES for c in COLORS for s in SHAPES][:60]
    spec = FeatureSpec(pooled_memory=pooled)
    one = TextFeatures.compute(enc, tok, texts, device="cpu", spec=spec, batch=60)
    small = TextFeatures.compute(enc, tok, texts, device="cpu", spec=spec, batch=7)
    idx = torch.tensor([59, 0, 13, 31, 7])
    want, want_pad = one.layers(idx)
    got, pad = small.layers(idx)
    assert torch.equal(pad, want_pad) and got.shape == want.shape
    valid = ~pad  # padding positions are masked in every attention and pooling
    assert torch.allclose(got[:, valid], want[:, valid], atol=2e-2, rtol=2e-3)
    assert torch.allclose(small.pooled, one.pooled, atol=1e-5)
    assert (want.shape[2] == 1) == pooled


@pytest.mark.parametrize(
    "epochs, per_epoch, max_steps, planned", [(10, 30, None, 300), (10, 30, 120, 120)]
)
def test_the_learning_rate_decays_to_a_twentieth_over_the_planned_steps(
    epochs, per_epoch, max_steps, planned
):
    """The plan is epochs x the first epoch's batches, capped by the step budget; the rate
    falls along a cosine and then holds at 5%."""
    from ace_core.retrieval._torch import cosine_factor
    from ace_core.retrieval.training import step_budget

    cfg = TrainConfig(epochs=epochs, max_steps=max_steps, examples_per_item=None)
    assert step_budget(cfg, 1000, per_epoch) == planned
    rates = [cosine_factor(step, planned) for step in range(planned + 20)]
    assert rates[0] == pytest.approx(1.0)
    assert rates[planned // 2] == pytest.approx(0.525, abs=0.01)
    assert rates[planned] == pytest.approx(0.05) and rates[-1] == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_training_steps_the_decay_once_per_batch_and_a_fine_tune_keeps_its_rate(toy, monkeypatch):
    from ace_core.retrieval import training
    from ace_core.retrieval.fine_tune import IngestConfig

    ids, x, sids, caps, _ = toy
    made = []
    real = training.Optimizer
    monkeypatch.setattr(training, "Optimizer", lambda *a: made.append(real(*a)) or made[-1])
    small = RetrieverConfig(d_model=32, n_layers=1)
    train = TrainConfig(epochs=3, eval_every=3, examples_per_item=None)
    fit = fit_retrieval(ids, x, sids, toy_indexer(toy), caps, device="cpu", config=small,
                        train=train, dense=False)
    (opt,) = made
    assert len(opt.schedules) == len(opt.opts) == 2  # the dense parameters and the offsets
    assert all(s.last_epoch == fit.generative_report.steps for s in opt.schedules)
    assert IngestConfig().fine_tune(TrainConfig()).lr_decay is False


@pytest.mark.parametrize("balance", [True, False])
def test_balancing_the_indexing_task_makes_every_id_a_target_as_often(balance):
    """Items 0 and 1 have 3 training captions each, items 2 and 3 none. Balanced, every item's
    ID is the target of 5 examples an epoch (captions plus indexing); unbalanced, the
    caption-less items' IDs are targets less often (2 against 5)."""
    import torch

    from ace_core.retrieval.batches import epoch_batches
    from ace_core.retrieval.fine_tune import IngestConfig

    cap_items = torch.tensor([0, 0, 0, 1, 1, 1])
    cfg = TrainConfig(batch_size=4, balance_index_task=balance)
    batches = epoch_batches(torch.arange(6), torch.arange(4), cap_items, cfg, torch.Generator())
    targets = torch.cat([cap_items[b] if kind == "cap" else b for kind, b in batches])
    counts = torch.bincount(targets, minlength=4).tolist()
    assert counts == ([5, 5, 5, 5] if balance else [5, 5, 2, 2])
    assert TrainConfig().balance_index_task  # a build balances; an ingest's fine-tune does not
    assert not IngestConfig().fine_tune(TrainConfig()).balance_index_task


def test_the_budget_is_set_in_examples_per_item():
    from ace_core.retrieval.training import step_budget

    cfg = TrainConfig(examples_per_item=40, batch_size=64, epochs=60)
    assert step_budget(cfg, 10_000, 1_250) == 6_250  # 40 x 10k / 64
    assert step_budget(cfg, 10_000, 1_250, workers=2) == 3_125  # a step takes 2 batches
    assert step_budget(cfg, 10_000, 50) == 60 * 50  # the epochs cap the budget
    assert step_budget(TrainConfig(examples_per_item=40, max_steps=1000), 10_000, 100) == 1000


def test_training_stops_once_validation_has_flattened(toy):
    ids, x, sids, caps, _ = toy
    train = TrainConfig(examples_per_item=5_000, eval_every=1, patience=2, min_gain=0.05,
                        dense=DenseTrainConfig(epochs=1))  # fmt: skip
    rows = []
    fit = fit_retrieval(ids, x, sids, toy_indexer(toy), caps, device="cpu", train=train,
                        config=RetrieverConfig(d_model=32, n_layers=1), dense=False,
                        progress=lambda epoch, row: rows.append(row))  # fmt: skip
    r = fit.generative_report
    assert r.stopped == "flattened" and r.steps < r.budget_steps
    # the last row tells the progress why it ends short of its budget (issue 43), no other
    assert rows[-1]["stopped"] == "flattened" and rows[-1]["steps"] == r.steps
    assert not any("stopped" in row for row in rows[:-1])
    gains = [h["val"]["MRR@10"] for h in r.history if "val" in h]
    best = max(gains[: -train.patience])  # the last gain, then `patience` without one
    assert all(g < best + train.min_gain for g in gains[-train.patience :])


@pytest.mark.parametrize("updates", ["new-items", "new-offsets"])
def test_an_ingest_keeps_what_its_updates_setting_keeps(toy, updates):
    """``ingest.updates``: "new-items" keeps old items' offsets as the parent trained them,
    "new-offsets" keeps every weight but the new items' offsets (nothing to forget)."""
    from dataclasses import replace

    import torch

    from ace_core.retrieval.fine_tune import IngestConfig, InitState

    ids, x, sids, caps, fit = toy
    parent = fit.model.decoder.state_dict()
    new = {i for n, i in enumerate(ids) if i in caps and n % 5 == 0}
    init = InitState(
        decoder={k: v.clone() for k, v in parent.items()},
        dense=fit.model.dense.state_dict(),
        vocab=fit.model.vocab,
        item_ids=set(ids) - new,  # the parent's rows are all of ``ids``' rows, in order
        item_order=list(ids),
    )
    child = fit_retrieval(
        ids, x, sids, toy_indexer(toy), caps, device="cpu", config=fit.model.config,
        train=TrainConfig(epochs=4, dense=DenseTrainConfig(epochs=1)), init=init,
        ingest=replace(IngestConfig(), epochs=4, eval_every=2, updates=updates),
    )  # fmt: skip
    after = child.model.decoder.state_dict()
    offsets = "item_offset.vectors.weight"
    rows = torch.tensor([n for n, i in enumerate(ids) if i not in new])
    assert torch.equal(after[offsets][rows], parent[offsets][rows])  # old items' offsets
    shared = [k for k, v in parent.items() if "item_offset" not in k and v.is_floating_point()]
    unchanged = [k for k in shared if torch.equal(after[k], parent[k])]
    if updates == "new-offsets":
        assert unchanged == shared
    if child.generative_report.best_epoch > 0:  # a fine-tuned epoch was kept
        assert updates == "new-offsets" or unchanged != shared
        fresh = torch.tensor([n for n, i in enumerate(ids) if i in new])
        assert not torch.equal(after[offsets][fresh], parent[offsets][fresh])
