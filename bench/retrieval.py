"""Retrieval figures (issue: generative retriever). Prints markdown; not a test.

  .venv/bin/python bench/retrieval.py quality [--seed 2026] [--image-model ViT-B-32]
  .venv/bin/python bench/retrieval.py throughput [--sizes 1000 100000 1000000] [--repeats 3]
  .venv/bin/python bench/retrieval.py trie [--sizes 1000 1000000] [--repeats 5]

quality: a fresh `ace sample-corpus` (default size, a seed no test uses) embedded with the
default encoders, then the generative retriever, the dense baseline and the four ablations
trained and evaluated on the held-out test captions (seen-items protocol); training time per
epoch and peak memory.
throughput: queries/s at batch 32, beam 10, for generative decoding (trie of n synthetic IDs)
and the dense baseline over n synthetic 512-d embeddings with faiss flat, IVF-Flat (nprobe 16)
and HNSW (M 32, efSearch 64; up to --hnsw-max items, its build is slow on 2 cores); all
include the same text encoder forward pass, which is also reported alone.
trie: per size, the trie's build time and the growth of the process's RSS around it, and
beam search alone (4 batches of 32 queries, beam 10, the default-size decoder with random
weights on random encoder layers): the part of a query that could grow with the corpus.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.media.discovery import discover  # noqa: E402
from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig  # noqa: E402
from ace_core.retrieval.dense import DenseProjection, dense_search  # noqa: E402
from ace_core.retrieval.fit import fit_retrieval  # noqa: E402
from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder  # noqa: E402
from ace_core.retrieval.text_features import TextFeatures  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from bench.timing import median_time  # noqa: E402

SMOKE = ["throughput", "--sizes", "1000", "--repeats", "1", "--batches", "1", "--hnsw-max", "1000"]


def embed_corpus(corpus: Path, model: str):
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import to_common_dim
    from ace_core.media.pipeline import build_encoder, embed_files

    cfg = EmbedConfig(
        image=ImageEncoderConfig(model, "random"), audio=AudioEncoderConfig(checkpoint="random")
    )
    found = discover(corpus)
    image = build_encoder("image", cfg)
    enc = {
        "image": image,
        "video": build_encoder("video", cfg, shared=image),
        "audio": build_encoder("audio", cfg),
    }
    res = sorted(
        (r for r in embed_files(found.files, enc, cfg.pipeline) if r.error is None),
        key=lambda r: r.file.item_id,
    )
    x = np.stack([to_common_dim(r.embedding[None], 512)[0] for r in res])
    return [r.file.item_id for r in res], x, found.captions


def quality(args) -> None:
    from ace_core.synth import write_sample_corpus

    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-q-"))
    write_sample_corpus(tmp / "c", seed=args.seed)
    ids, x, caps = embed_corpus(tmp / "c", args.image_model)
    base_ids = SemanticIDConfig()
    encoder = build_text_encoder(RetrieverConfig())
    runs = {
        "ACE (full)": (base_ids, {}),
        "no_coarse": (replace(base_ids, mode="no_coarse"), {}),
        "hkmeans": (replace(base_ids, mode="hkmeans"), {}),
        "no_fusion": (base_ids, {"fusion": False}),
        "random_ids": (replace(base_ids, mode="random"), {}),
    }
    runs = {k: v for k, v in runs.items() if k in args.models}
    results: dict[str, list[dict]] = {}
    training = []
    for seed in args.train_seeds:
        for name, (idc, rc) in runs.items():
            indexer, sids = fit_semantic_ids(ids, x, idc)
            fit = fit_retrieval(
                ids,
                x,
                sids,
                indexer,
                caps,
                config=RetrieverConfig(seed=seed, **rc),
                train=TrainConfig(seed=seed),
                encoder=encoder,
                dense=name == "ACE (full)",
            )
            results.setdefault(name, []).append(fit.eval["generative"])
            if name == "ACE (full)":
                results.setdefault("dense baseline (MiniLM + linear, faiss flat IP)", []).append(
                    fit.eval["dense"]
                )
                training.append(fit.generative_report)
            queries = fit.eval["queries"]
    print(
        f"sample corpus seed {args.seed}: {len(ids)} items, image model {args.image_model} "
        f"(random init), queries {queries}; median over training seeds {args.train_seeds}"
    )
    print("\n| model | R@1 | R@5 | R@10 | MRR@10 | R@1 per seed |\n|---|---|---|---|---|---|")
    for name, ms in results.items():
        med = {k: statistics.median(m[k] for m in ms) for k in ("R@1", "R@5", "R@10", "MRR@10")}
        per = ", ".join(f"{m['R@1']:.3f}" for m in ms)
        print(
            f"| {name} | {med['R@1']:.3f} | {med['R@5']:.3f} | {med['R@10']:.3f} | "
            f"{med['MRR@10']:.3f} | {per} |"
        )
    for t in training:
        print(
            f"\ntraining (ACE full): {t.epochs} epochs (best {t.best_epoch}), "
            f"{t.seconds_per_epoch:.2f} s/epoch, {t.seconds:.1f} s total, peak RSS "
            f"{t.peak_memory_mb:.0f} MB, device {'cuda' if torch.cuda.is_available() else 'cpu'}"
        )


def synthetic_ids(n: int, levels=3, K=256, seed=0) -> np.ndarray:
    from ace_core.ids.kmeans import auto_k

    rng = np.random.default_rng(seed)
    k = auto_k(n)
    coarse = rng.integers(0, k, n)
    fine = rng.integers(0, K, (n, levels))
    from ace_core.ids.semantic_ids import assign_suffixes

    ids = [f"{i:064x}" for i in range(n)]
    suffix = assign_suffixes(ids, coarse, fine)
    return np.concatenate([coarse[:, None], fine, suffix[:, None]], 1), k, K


def throughput(args) -> None:
    from ace_core.retrieval.constrained_generation import Trie
    from ace_core.retrieval.generation import generative_search
    from ace_core.retrieval.retrieval_model import feature_spec

    torch.manual_seed(0)
    enc, tok, _ = build_text_encoder(RetrieverConfig())
    enc.eval()
    texts = [
        f"a {c} {s} in the {p}"
        for c in ("red", "green", "blue", "white")
        for s in ("circle", "square", "star", "triangle")
        for p in ("top", "bottom")
    ]
    texts = (texts * 10)[: 32 * args.batches]

    def med(fn):
        return median_time(fn, args.repeats)

    spec = feature_spec(RetrieverConfig())  # what a served query computes

    def features():
        return TextFeatures.compute(enc, tok, texts, device="cpu", batch=32, spec=spec)

    t_enc = med(features)
    print(
        f"{len(texts)} queries, batch 32, beam 10, {torch.get_num_threads()} threads; text "
        f"encoder alone: {len(texts) / t_enc:.1f} q/s"
    )
    print(
        "\n| corpus IDs | generative q/s | dense flat q/s | dense IVF q/s | dense HNSW q/s "
        "| generative / flat | generative slowdown vs first size |"
    )
    print("|---|---|---|---|---|---|---|")
    first = None
    for n in args.sizes:
        tokens, k, K = synthetic_ids(n)
        vocab = Vocab(k, 3, K, int(tokens[:, -1].max()) + 1)
        trie = Trie(vocab.encode(tokens))
        dec = IDDecoder(RetrieverConfig(), vocab, enc.hidden, enc.n_layers, 512, n).eval()
        emb = np.random.default_rng(1).standard_normal((n, 512)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        dense = DenseProjection(enc.hidden, 512).eval()
        import faiss

        index = faiss.IndexFlatIP(512)
        index.add(emb)

        def gen():
            feats = features()
            generative_search(dec, feats, trie, 10, 10, batch=32)

        def den(idx):
            def run():
                feats = features()
                for i in range(0, len(texts), 32):
                    sub = TextFeatures.__new__(TextFeatures)
                    sub.pooled = feats.pooled[i : i + 32]
                    dense_search(dense, sub, emb, 10, index=idx)

            return run

        tg, td = med(gen), med(den(index))
        ivf = med(den(ivf_index(faiss, emb)))
        hnsw = med(den(hnsw_index(faiss, emb))) if n <= args.hnsw_max else None
        first = first or tg
        hnsw_qs = f"{len(texts) / hnsw:.1f}" if hnsw else "-"
        print(
            f"| {n:,} | {len(texts) / tg:.1f} | {len(texts) / td:.1f} | {len(texts) / ivf:.1f} "
            f"| {hnsw_qs} | {td / tg:.2f} | {tg / first:.2f} |",
            flush=True,
        )


def trie_cost(args) -> None:
    import time

    from ace_core.retrieval.constrained_generation import Trie, constrained_beam_search

    print("| corpus IDs | trie build s | RSS growth MB | beam search of 128 queries s |")
    print("|---|---|---|---|")
    for n in args.sizes:
        tokens, k, K = synthetic_ids(n)
        vocab = Vocab(k, 3, K, int(tokens[:, -1].max()) + 1)
        encoded = vocab.encode(tokens)
        rss0, t0 = _rss_mb(), time.perf_counter()
        trie = Trie(encoded)
        built, grown = time.perf_counter() - t0, _rss_mb() - rss0
        torch.manual_seed(0)
        dec = IDDecoder(RetrieverConfig(), vocab, 384, 6, 512).eval()
        mem, pad, _ = dec.memory_from_text(torch.randn(6, 32, 12, 384), None)

        def search():
            for _ in range(4):
                constrained_beam_search(dec, mem, pad, trie, 10)

        print(f"| {n:,} | {built:.2f} | {grown:.0f} | {median_time(search, args.repeats):.3f} |")


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def ivf_index(faiss, emb: np.ndarray):
    """IVF-Flat, nlist about 4 sqrt(n), trained on at most 64 per list, nprobe 16."""
    nlist = max(16, int(4 * np.sqrt(len(emb))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(emb.shape[1]), emb.shape[1], nlist,
                               faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    sample = np.random.default_rng(2).choice(len(emb), min(len(emb), 64 * nlist), replace=False)
    index.train(emb[sample])
    index.add(emb)
    index.nprobe = 16
    return index


def hnsw_index(faiss, emb: np.ndarray):
    """HNSW-Flat, M 32, efSearch 64 (inner product on normalised vectors)."""
    index = faiss.IndexHNSWFlat(emb.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 64
    index.add(emb)
    return index


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seed", type=int, default=2026)
    q.add_argument("--image-model", default="ViT-B-32")
    q.add_argument("--train-seeds", type=int, nargs="+", default=[0])
    q.add_argument(
        "--models",
        nargs="+",
        default=["ACE (full)", "no_coarse", "hkmeans", "no_fusion", "random_ids"],
    )
    t = sub.add_parser("throughput")
    t.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    t.add_argument("--hnsw-max", type=int, default=100_000, help="largest size given HNSW")
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--batches", type=int, default=4, help="batches of 32 queries")
    c = sub.add_parser("trie")
    c.add_argument("--sizes", type=int, nargs="+", default=[1000, 1_000_000])
    c.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    {"quality": quality, "throughput": throughput, "trie": trie_cost}[args.what](args)


if __name__ == "__main__":
    main()
