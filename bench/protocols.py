"""Retrieval quality with encoders that mean something (issue 8): three protocols. Not a test.

  .venv/bin/python bench/protocols.py [--seed 4040] [--train-seeds 0 1 2] [--ablations]
                                      [--images 100 --audio 40 --videos 20 --epochs 20]

A synthetic corpus from a generator seed the tiny encoders never saw (they train on seeds 0
and 1 and are evaluated on 9999), embedded with the tiny aligned encoders (models/tiny, built
by `ace tiny-encoders models/tiny` when absent). Three protocols:

- seen: every item has training captions; test queries are held-out captions of those items
  (the split of ace_core.retrieval.evaluation);
- unseen: a quarter of the items (by item_id hash) have no training caption; the queries are
  one caption of each of them;
- caption-less: no captions at all; the queries are one caption of every item.

For each: the generative retriever through each query path (captions = MiniLM fusion,
zero-shot = the encoders' text towers into the item-memory path, both = merged by score),
the dense caption baseline (MiniLM + linear, faiss flat) and the text-tower dense baseline
(the towers' query embedding searched exactly over the item embeddings: what clip-retrieval
does). With --ablations the generative model is also trained with random IDs, without the
coarse token, with hierarchical k-means IDs and without fusion (on --ablation-seeds: each is
a full training run). Medians over training seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.retrieval.dense import dense_search  # noqa: E402
from ace_core.retrieval.evaluation import retrieval_metrics  # noqa: E402
from ace_core.retrieval.fit import fit_retrieval  # noqa: E402
from ace_core.retrieval.generation import generative_search  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from ace_core.retrieval.zero_shot import (  # noqa: E402
    merge_generated,
    text_spaces,
    tower_dense_search,
    zero_shot_search,
)

TINY = ROOT / "models" / "tiny"
METRICS = ("R@1", "R@5", "R@10", "MRR@10")

SMOKE = ["--images", "10", "--audio", "4", "--videos", "2", "--epochs", "1", "--train-seeds", "0"]


def tiny_encoders():
    """(EmbedConfig, {modality: encoder}) of the tiny aligned encoders."""
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig
    from ace_core.media.pipeline import build_encoder

    cfg = EmbedConfig(
        image=ImageEncoderConfig("ace-tiny-clip", str(TINY / "ace-tiny-clip.safetensors")),
        audio=AudioEncoderConfig("ace-tiny-clap", str(TINY / "ace-tiny-clap.safetensors")),
    )
    image = build_encoder("image", cfg)
    audio = build_encoder("audio", cfg)
    return cfg, {"image": image, "video": build_encoder("video", cfg, shared=image),
                 "audio": audio}  # fmt: skip


def towers_of(enc) -> dict:
    return {"image": enc["image"].embed_text, "audio": enc["audio"].embed_text}


def embed(corpus: Path):
    from ace_core.media.discovery import discover
    from ace_core.media.embed_config import common_dim
    from ace_core.media.encoders import to_common_dim
    from ace_core.media.pipeline import embed_files

    cfg, enc = tiny_encoders()
    found = discover(corpus)
    res = sorted(
        (r for r in embed_files(found.files, enc, cfg.pipeline) if r.error is None),
        key=lambda r: r.file.item_id,
    )
    dim = common_dim(cfg)
    x = np.stack([to_common_dim(r.embedding[None], dim)[0] for r in res])
    ids = [r.file.item_id for r in res]
    modalities = [r.file.modality for r in res]
    return ids, x, modalities, found.captions, towers_of(enc)


def _hash_fraction(item_id: str) -> float:
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 2**32


def protocol_queries(name, ids, captions, rng):
    """(training captions, [(query, row)]) of a protocol."""
    if name == "caption-less":
        return {}, [(_one(captions[i], rng), n) for n, i in enumerate(ids) if i in captions]
    unseen = {i for i in ids if _hash_fraction(i) < 0.25}
    train = {i: c for i, c in captions.items() if i not in unseen}
    queries = [
        (_one(captions[i], rng), n) for n, i in enumerate(ids) if i in unseen and i in captions
    ]
    return train, queries


def _one(entry, rng) -> str:
    caps = entry.captions
    return caps[int(rng.integers(len(caps)))]


def score(hits, gold) -> dict:
    return retrieval_metrics([[i for i, _ in row] for row in hits], gold)


def evaluate(fit, spaces, queries, dim, *, with_dense: bool, captioned, k=10, beam=10) -> dict:
    texts, gold = [q for q, _ in queries], [g for _, g in queries]
    model = fit.model
    feats = model.features(texts)
    captions = generative_search(model.decoder, feats, model.trie, beam, k)
    zero = zero_shot_search(model.decoder, spaces, texts, dim, k, beam)
    if captioned and set(gold).isdisjoint(captioned):  # unseen: where do wrong answers go?
        for name, hits in (("captions", captions), ("zero-shot", zero)):
            share = np.mean([bool(h) and h[0][0] in captioned for h in hits])
            print(f"  unseen items, {name} path: top-1 is a captioned item for {share:.0%}")
    out = {
        "generative (captions path)": score(captions, gold),
        "generative (zero-shot path)": score(zero, gold),
        "generative (both, merged)": score(merge_generated(model.decoder, captions, zero, k), gold),
        "text-tower dense (faiss flat)": score(
            tower_dense_search(spaces, texts, model.item_emb, k), gold
        ),
    }
    if with_dense:
        dense = dense_search(model.dense, feats, model.item_emb, k)
        out["dense caption baseline"] = score(dense, gold)
    return out


def run(args) -> None:
    from ace_core.synth import CorpusCounts, write_sample_corpus

    if not (TINY / "tiny-encoders.json").exists():
        sys.exit(f"no tiny encoders at {TINY}: run `ace tiny-encoders {TINY}` first")
    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-protocols-"))
    counts = CorpusCounts(images=args.images, audio=args.audio, videos=args.videos)
    write_sample_corpus(tmp / "c", seed=args.seed, counts=counts)
    t0 = time.perf_counter()
    ids, x, modalities, captions, towers = embed(tmp / "c")
    print(f"embedded {len(ids)} items in {time.perf_counter() - t0:.1f} s")
    encoder = build_text_encoder(RetrieverConfig())
    variants = {"ACE (full)": (SemanticIDConfig(), {})}
    if args.ablations:
        base = SemanticIDConfig()
        variants |= {
            "random IDs": (replace(base, mode="random"), {}),
            "no coarse token": (replace(base, mode="no_coarse"), {}),
            "hierarchical k-means": (replace(base, mode="hkmeans"), {}),
            "no fusion": (base, {"fusion": False}),
        }
    table: dict[str, dict[str, list[dict]]] = {}
    for protocol in ("seen", "unseen", "caption-less"):
        for seed in args.train_seeds:
            for variant, (idc, rc) in variants.items():
                if variant != "ACE (full)" and seed not in args.ablation_seeds:
                    continue
                row = one_fit(protocol, variant, idc, rc, seed, ids, x, modalities, captions,
                              towers, encoder, args)  # fmt: skip
                for name, m in row.items():
                    table.setdefault(protocol, {}).setdefault(name, []).append(m)
    report(table, args, len(ids))


def one_fit(protocol, variant, idc, rc, seed, ids, x, modalities, captions, towers, enc, args):
    rng = np.random.default_rng(1000 + seed)
    train_caps, queries = protocol_queries(protocol, ids, captions, rng)
    if protocol == "seen":
        train_caps = captions
    indexer, sids = fit_semantic_ids(ids, x, idc)
    t0 = time.perf_counter()
    fit = fit_retrieval(
        ids, x, sids, indexer, train_caps,
        config=RetrieverConfig(seed=seed, **rc),
        train=TrainConfig(seed=seed, epochs=args.epochs),
        encoder=enc, dense=variant == "ACE (full)" and bool(train_caps),
    )  # fmt: skip
    if protocol == "seen":
        queries = [(t, n) for t, n in fit.split.test]
    spaces = text_spaces(modalities, fit.model.id_tokens, towers, fit.model.trie_of)
    captioned = {n for n, i in enumerate(ids) if i in train_caps}
    out = evaluate(fit, spaces, queries, x.shape[1], captioned=captioned,
                   with_dense=variant == "ACE (full)" and bool(train_caps))  # fmt: skip
    print(
        f"{protocol:12s} seed {seed} {variant:22s} {len(queries)} queries, fit "
        f"{time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{k.split(' (')[-1].rstrip(')')} R@1 {v['R@1']:.3f}" for k, v in out.items()),
        flush=True,
    )
    if variant == "ACE (full)":
        return out
    return {f"{variant}: {k}": v for k, v in out.items() if k.startswith("generative")}


def report(table, args, n_items) -> None:
    print(
        f"\ncorpus: generator seed {args.seed}, {n_items} items ({args.images} images, "
        f"{args.audio} audio, {args.videos} videos), tiny aligned encoders; epochs "
        f"{args.epochs}; medians over training seeds {args.train_seeds}"
    )
    for protocol, rows in table.items():
        print(f"\n**{protocol}**\n\n| model | R@1 | R@5 | R@10 | MRR@10 | R@1 per seed |")
        print("|---|---|---|---|---|---|")
        for name, ms in rows.items():
            med = {k: statistics.median(m[k] for m in ms) for k in METRICS}
            per = ", ".join(f"{m['R@1']:.3f}" for m in ms)
            print(f"| {name} | " + " | ".join(f"{med[k]:.3f}" for k in METRICS) + f" | {per} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=4040)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--audio", type=int, default=40)
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--ablation-seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    flush_denormals()  # as the flows do, before any torch work (training 2.3x faster)
    run(args)


if __name__ == "__main__":
    main()
