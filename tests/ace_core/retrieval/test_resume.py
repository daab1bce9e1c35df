"""A killed training run resumes from its last epoch's checkpoint (ace_core/retrieval/resume.py)
and ends where an uninterrupted run ends."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ace_core.retrieval import fit as fit_module
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense import DenseProjection, DenseTrainConfig, train_dense
from ace_core.retrieval.evaluation import validation_order
from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab
from ace_core.retrieval.text_features import TextFeatures
from ace_core.retrieval.training import TrainConfig, train_generative


class Killed(Exception):
    pass


def _setup():
    rng = np.random.default_rng(0)
    n, dim = 40, 8
    vocab = Vocab(n_coarse=4, levels=1, codebook_size=4, n_suffix=4)
    raw = np.stack([np.arange(n) % 4, (np.arange(n) // 4) % 4, np.arange(n) // 16], 1)
    tokens = vocab.encode(raw)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    layers = [rng.standard_normal((1, 2, 6)).astype(np.float16) for _ in range(2 * n)]
    pooled = [rng.standard_normal((2 * n, 6)).astype(np.float32)]
    torch.manual_seed(0)
    cfg = RetrieverConfig(d_model=16, n_layers=1, n_heads=2, index_memory_tokens=2)
    decoder = IDDecoder(cfg, vocab, enc_hidden=6, n_enc_layers=2, item_dim=dim, n_items=n)

    class Enc:
        n_layers, hidden = 2, 6

    feats = TextFeatures.of_blocks(layers, pooled, Enc, "cpu")
    return decoder, feats, np.arange(2 * n) % n, emb, tokens, Trie(tokens).tie(emb)


def _train(tmp_path, kill_at=None, on_step=None, **budget):
    decoder, feats, items, emb, tokens, trie = _setup()
    cfg = TrainConfig(**{"epochs": 5, "examples_per_item": None, "batch_size": 16, **budget})

    def progress(epoch, row):
        if epoch == kill_at:
            raise Killed

    report = train_generative(
        decoder,
        feats,
        items,
        emb,
        tokens,
        trie,
        cfg,
        progress=progress,
        on_step=on_step,
        checkpoint=tmp_path / "ckpt",
    )
    return decoder, report


def test_a_killed_run_resumes_from_its_last_epoch_and_ends_where_a_whole_run_ends(tmp_path):
    whole, whole_report = _train(tmp_path / "whole")
    with pytest.raises(Killed):
        _train(tmp_path / "cut", kill_at=3)  # epochs 1 and 2 saved
    assert (tmp_path / "cut" / "ckpt" / "state.json").exists()
    resumed, report = _train(tmp_path / "cut")
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4, 5]
    assert report.steps == whole_report.steps and report.examples == whole_report.examples
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.to_dense(), b.to_dense(), atol=1e-4), (name, (a - b).abs().max())


def _no_step(*_):
    raise AssertionError("a finished run trained again")


@pytest.mark.parametrize("budget", [{}, {"max_steps": 6}], ids=["epochs", "step budget"])
def test_a_finished_run_is_kept_and_a_second_start_takes_no_step(tmp_path, budget):
    whole, report = _train(tmp_path, **budget)  # killed after training, e.g. in the dense fit
    resumed, again = _train(tmp_path, on_step=_no_step, **budget)
    assert again.history == report.history and again.stopped == report.stopped
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a.to_dense(), b.to_dense())


def test_the_dense_baseline_is_trained_once_per_checkpoint(tmp_path, monkeypatch):
    _, feats, items, emb, _, _ = _setup()
    train = TrainConfig()
    train = replace(train, dense=replace(train.dense, epochs=2, examples_per_item=None))
    feats, gold = {"train": feats, "val": feats}, {"train": items, "val": items}
    first = SimpleNamespace(dense=DenseProjection(6, 8), item_emb=emb)
    before = {k: v.clone() for k, v in first.dense.state_dict().items()}
    fit_module._train_dense(first, feats, gold, train, str(tmp_path))
    assert (tmp_path / "dense-run" / "state.json").exists()  # resumable while it trained
    assert not torch.equal(before["proj.weight"], first.dense.state_dict()["proj.weight"])
    monkeypatch.setattr(fit_module, "train_dense", _no_step)
    second = SimpleNamespace(dense=DenseProjection(6, 8), item_emb=emb)
    fit_module._train_dense(second, feats, gold, train, str(tmp_path))
    for a, b in zip(first.dense.state_dict().values(), second.dense.state_dict().values()):
        assert torch.equal(a, b)


def _fit_dense(folder, kill_at=None):
    _, feats, items, emb, _, _ = _setup()
    epochs = []

    def on_epoch(epoch, steps, m):
        if epoch == kill_at:
            raise Killed
        epochs.append((epoch, steps, m))

    cfg = DenseTrainConfig(epochs=6, examples_per_item=None, batch_size=16, negatives=8)
    torch.manual_seed(1)
    proj = DenseProjection(6, 8)
    best = train_dense(
        proj, feats, items, emb, cfg, val=(feats, items), on_epoch=on_epoch, checkpoint=folder
    )
    return proj, best, epochs


def test_a_killed_dense_fit_resumes_at_its_last_epoch_and_ends_where_a_whole_fit_ends(tmp_path):
    whole, whole_best, whole_epochs = _fit_dense(tmp_path / "whole")
    with pytest.raises(Killed):
        _fit_dense(tmp_path / "cut", kill_at=4)  # epochs 1 to 3 saved
    resumed, best, epochs = _fit_dense(tmp_path / "cut")
    assert [e for e, _, _ in epochs] == [0, 4, 5, 6]  # epoch 0: where it resumed
    best_by_3 = max((m for _, _, m in whole_epochs[1:4]), key=validation_order)
    assert epochs[0] == (0, whole_epochs[3][1], best_by_3)
    assert epochs[1:] == whole_epochs[4:] and best == whole_best  # negatives, schedule, RNG
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    again = _fit_dense(tmp_path / "cut")[2]  # a finished fit takes no further epoch
    assert again == [(0, whole_epochs[-1][1], whole_best)]
