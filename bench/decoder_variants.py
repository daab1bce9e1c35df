"""The generative decoder's variants on one corpus (issue 40 part 2): train once per variant
and score pure generation's paths beside exact search, at several leaf weights. Not a test.

    .venv/bin/python -m bench decoder_variants /work/data/w1k --protocol seen
        [--untied] [--tokens] [--no-offsets] [--rdrop W] [--leaf 20 100]
        [--steps N] [--examples-per-item X]

The variants are the retriever's switches: ``--untied`` the ACE decoder alone (no output
layer tied to the trie's node vectors), ``--tokens`` the caption encoder's token states as
the decoder's memory instead of each layer mean-pooled, ``--no-offsets`` no per-item offset
vectors, ``--rdrop`` R-Drop's weight, ``--leaf`` the tied leaf scale(s) scored. The corpus
needs its embeddings kept (``fused_protocols.py --corpus`` keeps them). Prints the fit's
steps, seconds and why training ended, then R@1 / R@10 / MRR@10 of the towers' exact search,
the dense caption baseline, the zero-shot and captions paths and pure generation (merged
per item, as served) on at most ``--queries`` test queries of the protocol.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.retrieval.dense import dense_search  # noqa: E402
from ace_core.retrieval.fit import fit_retrieval  # noqa: E402
from ace_core.retrieval.generation import generative_search  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from ace_core.retrieval.validation import ZeroShotInputs  # noqa: E402
from ace_core.retrieval.zero_shot import (  # noqa: E402
    merge_generated,
    text_spaces,
    tower_dense_search,
    tower_queries,
    zero_shot_search,
)
from bench.fused_protocols import all_queries, embedded, ranks, sampled  # noqa: E402
from bench.protocols import protocol_queries  # noqa: E402

SMOKE = ["{corpus}", "--steps", "20", "--epochs", "2", "--queries", "40"]


def arguments(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--protocol", default="seen", choices=("seen", "unseen"))
    ap.add_argument("--steps", type=int, default=0, help="a step cap (0: none)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--examples-per-item", type=float, default=None)
    ap.add_argument("--leaf", type=float, nargs="+", default=[RetrieverConfig().tied_leaf])
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--tokens", action="store_true")
    ap.add_argument("--no-offsets", action="store_true")
    ap.add_argument("--rdrop", type=float, default=TrainConfig().rdrop_weight)
    ap.add_argument("--queries", type=int, default=1000)
    return ap.parse_args(argv)


def fit_variant(a, ids, x, modalities, captions, towers):
    train_caps, _ = protocol_queries(a.protocol, ids, captions, np.random.default_rng(1000))
    train_caps = captions if a.protocol == "seen" else train_caps
    indexer, sids = fit_semantic_ids(ids, x, SemanticIDConfig())
    cfg = RetrieverConfig(
        tied=not a.untied, pooled_memory=not a.tokens, item_offsets=not a.no_offsets
    )
    train = TrainConfig(
        max_steps=a.steps or None,
        epochs=a.epochs,
        rdrop_weight=a.rdrop,
        examples_per_item=a.examples_per_item,
    )
    fit = fit_retrieval(
        ids,
        x,
        sids,
        indexer,
        train_caps,
        config=cfg,
        train=train,
        encoder=build_text_encoder(cfg),
        zero_shot=ZeroShotInputs(modalities, towers),
    )
    r = fit.generative_report
    print(
        f"fit: {r.steps} steps of {r.budget_steps} ({r.stopped}), {r.seconds:.0f} s of "
        f"training ({r.seconds / max(r.steps, 1):.3f} s a step), phases {fit.seconds}",
        flush=True,
    )
    return fit, train_caps


def scored(a, fit, train_caps, ids, x, modalities, captions, towers) -> dict:
    model = fit.model
    spaces = text_spaces(modalities, model.id_tokens, towers, model.trie_of)
    queries = sampled(all_queries(a.protocol, ids, captions, fit.split, train_caps), a.queries, 0)
    texts, gold = [q for q, _ in queries], [g for _, g in queries]
    q = tower_queries(spaces, texts, x.shape[1])
    out = {"towers (exact)": ranks(tower_dense_search(spaces, texts, model.item_emb, 10, q), gold)}
    feats = model.features(texts)
    out["dense caption"] = ranks(dense_search(model.dense, feats, model.item_emb, 10), gold)
    for leaf in a.leaf:
        if model.decoder.cfg.tied:
            model.decoder.cfg = replace(model.decoder.cfg, tied_leaf=leaf)
        zero = zero_shot_search(model.decoder, spaces, texts, x.shape[1], 10, 10, queries=q)
        caps = generative_search(model.decoder, feats, model.trie, 10, 10)
        merged = merge_generated(model.decoder, caps, zero, 10)
        out[f"zero-shot, leaf {leaf:g}"] = ranks(zero, gold)
        out[f"captions, leaf {leaf:g}"] = ranks(caps, gold)
        out[f"generation (merged), leaf {leaf:g}"] = ranks(merged, gold)
    return out


def main(argv=None) -> None:
    a = arguments(argv)
    flush_denormals()
    ids, x, modalities, captions, towers = embedded(Path(a.corpus), keep=True)
    start = time.perf_counter()
    fit, train_caps = fit_variant(a, ids, x, modalities, captions, towers)
    out = scored(a, fit, train_caps, ids, x, modalities, captions, towers)
    print(f"\n{a.protocol}, {time.perf_counter() - start:.0f} s in all\n")
    print("| method | R@1 | R@10 | MRR@10 |\n|---|---|---|---|")
    for name, v in out.items():
        mrr = np.mean(np.where(v > 0, 1 / np.maximum(v, 1), 0))
        print(f"| {name} | {np.mean(v == 1):.3f} | {np.mean(v > 0):.3f} | {mrr:.3f} |")


if __name__ == "__main__":
    main()
