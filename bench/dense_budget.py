"""The dense caption baseline's training budget (issue 40 part 3): today's 20,000-step cap
against a budget in training examples per item, paired on one corpus's split, stored caption
features and seed. Not a test.

    .venv/bin/python -m bench dense_budget --corpus /work/data/w10k [--budgets 40 0]
        [--lr-decay] [--seeds 0 1 2] [--text-precision auto|float32|bfloat16]
        [--dense-precision float32 bfloat16]

``--budgets``: examples per item (0: the budget before issue 40, a cap of 20,000 steps at a
constant rate; ``--lr-decay``: the others with the cosine decay). Per budget: the steps it
took (early stopping on validation as a build trains it), seconds, and R@1 / MRR@10 on the
held-out test captions (95% bootstrap intervals), once per training seed (``--seeds``), with
the text encoder's features in ``--text-precision`` (the store keeps each precision apart),
and the InfoNCE logits' product in each of ``--dense-precision`` in turn (train.dense.precision).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.media.discovery import discover  # noqa: E402
from ace_core.retrieval.dense import (  # noqa: E402
    DENSE_BEFORE_BUDGET,
    DenseProjection,
    DenseTrainConfig,
    dense_search,
    dense_step_budget,
    train_dense,
)
from ace_core.retrieval.evaluation import split_queries  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.retrieval_model import RetrievalModel, build_vocab, new_decoder, new_dense  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder, default_encoder_path  # noqa: E402
from ace_index.storage.formats.text_features import feature_source  # noqa: E402

SMOKE = ["--corpus", "{corpus}", "--budgets", "4", "--test-queries", "50"]


BEFORE = DenseTrainConfig(**DENSE_BEFORE_BUDGET)  # 20,000 steps at a constant rate


def model_of(folder: Path, ids, x, encoder, config: RetrieverConfig) -> RetrievalModel:
    indexer, sids = fit_semantic_ids(ids, x, SemanticIDConfig())
    enc, tok, _ = encoder
    vocab = build_vocab(sids, indexer)
    decoder = new_decoder(config, vocab, enc, x.shape[1], indexer, len(ids))
    dense = new_dense(config, enc, x.shape[1])
    return RetrievalModel(
        config, vocab, ids, x, vocab.encode(sids.tokens()), enc, tok, decoder, dense
    )


def interval(values: np.ndarray, rng) -> tuple[float, float]:
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(1000)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--budgets", type=float, nargs="+", default=[40, 0])
    ap.add_argument("--test-queries", type=int, default=2000)
    ap.add_argument("--lr-decay", action="store_true", help="cosine decay over each budget")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    ap.add_argument("--text-precision", default="auto", choices=("auto", "float32", "bfloat16"))
    ap.add_argument("--dense-precision", nargs="+", default=["auto"],
                    choices=("auto", "float32", "bfloat16"))  # fmt: skip
    args = ap.parse_args(argv)
    flush_denormals()
    folder = Path(args.corpus)
    saved = np.load(folder / "embeddings.npz")
    ids, x = saved["ids"].tolist(), saved["x"]
    captions = discover(folder).captions
    config = RetrieverConfig(text_precision=args.text_precision)
    encoder = build_text_encoder(config, "cpu")
    model = model_of(folder, ids, x, encoder, config)
    split = split_queries(ids, captions, seed=0)
    source = feature_source(folder, default_encoder_path())
    feats = {
        n: source([t for t, _ in p], model)
        for n, p in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    gold = {
        n: np.array([i for _, i in p])
        for n, p in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    print(
        f"{folder}: {len(ids)} items, {len(gold['train'])} training captions, "
        f"{len(gold['test'])} test captions, text features in {encoder[0].precision}",
        flush=True,
    )
    base = DenseTrainConfig()
    test_sample = np.random.default_rng(0).permutation(len(gold["test"]))[: args.test_queries]
    test = (SimpleNamespace(pooled=feats["test"].pooled[test_sample]), gold["test"][test_sample])
    rows, text_dim = [], model.dense.proj.in_features
    for epi in args.budgets:
        cfg = replace(base, examples_per_item=epi, lr_decay=args.lr_decay) if epi else BEFORE
        for seed in args.seeds:
            for precision in args.dense_precision:
                cfg = replace(cfg, precision=precision)
                rows.append(one_budget(cfg, text_dim, x, feats, gold, test, seed))
    print("\n| budget | steps taken | seconds | test R@1 (best validation state) | test MRR@10 |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row, flush=True)


def one_budget(cfg: DenseTrainConfig, text_dim: int, x, feats, gold, test, seed: int) -> str:
    """Train one dense projection under ``cfg``; print its curve; its table row."""
    torch.manual_seed(seed)
    proj = DenseProjection(text_dim, x.shape[1])
    clock = {"train": 0.0, "since": time.perf_counter(), "steps": 0}
    name = f"{cfg.examples_per_item:g} examples/item" if cfg.examples_per_item else "before"
    name += ", cosine decay" if cfg.lr_decay else ""
    name += f", seed {seed}" if seed else ""
    name += f", {cfg.precision}" if cfg.precision != "auto" else ""

    def on_epoch(epoch: int, steps: int, val: dict | None) -> None:
        if epoch == 0:
            return  # train_dense's call before its first epoch: no point of the curve
        clock["train"] += time.perf_counter() - clock["since"]
        r1, _ = test_metrics(proj, x, test)
        print(
            f"{name}: epoch {epoch}, {steps} steps ({steps * cfg.batch_size / len(x):.1f} "
            f"examples/item), {clock['train']:.0f} s, val R@1 {val and val['R@1']}, "
            f"test R@1 {r1.mean():.3f}",
            flush=True,
        )
        clock["since"], clock["steps"] = time.perf_counter(), steps

    train_dense(
        proj,
        feats["train"],
        gold["train"],
        x,
        cfg,
        seed=seed,
        val=(feats["val"], gold["val"]),
        on_epoch=on_epoch,
    )
    r1, mrr = test_metrics(proj, x, test)
    lo, hi = interval(r1, np.random.default_rng(0))
    steps = dense_step_budget(cfg, len(x))
    return (
        f"| {name} (cap {steps:,} steps) | {clock['steps']:,} | "
        f"{clock['train']:.0f} | {r1.mean():.3f} [{lo:.3f}, {hi:.3f}] | {mrr.mean():.3f} |"
    )


def test_metrics(proj, x, test) -> tuple[np.ndarray, np.ndarray]:
    """Per test query: R@1 (0/1) and reciprocal rank within 10."""
    ranked = dense_search(proj, test[0], x, 10)
    rank = np.array(
        [next((n + 1 for n, (i, _) in enumerate(r) if i == g), 0) for r, g in zip(ranked, test[1])]
    )
    return (rank == 1).astype(float), np.where(rank > 0, 1 / np.maximum(rank, 1), 0)


if __name__ == "__main__":
    main()
