"""The fused default path against every baseline on three protocols (issues 22, 23). Not a test.

  .venv/bin/python bench/fused_protocols.py [--seeds 4040 4041] [--train-seeds 0 1 2]
                                            [--epochs 20] [--items 160] [--max-steps N]
                                            [--max-queries 1000] [--world scenes|classic]
                                            [--corpus DIR --protocols seen]
                                            [--curve --eval-every 1] [--report-each-fit]

Corpora of ``--items`` items (5/8 images, 1/4 audio, 1/8 videos; 160 by default) from
generator seeds the tiny encoders never saw (scenes world by default; ``--world classic`` is
the one-object world of the issue-23 tables), embedded with the tiny aligned encoders; the
protocols and splits of
bench/protocols.py, but every caption of a query item is a query (more queries, tighter
intervals). Each fit is scored on:

- auto (fused): what ``ace query`` serves, fit exactly as a build fits it
  (ace_core.retrieval.fused_search on the version's validation queries);
- generative: pure generation, the path a version would serve without fusion (both paths
  merged where there are captions, the zero-shot path where there are none), and the
  captions and zero-shot paths alone;
- text-tower dense (exact), the dense caption baseline, and BM25 (bm25s) over each item's
  training captions and file name; where a space holds more than 25,000 items, also the
  text-tower search the fused path runs there (faiss IVF, ace_core.retrieval.dense_index).

With ``--corpus DIR`` the embeddings are kept in DIR/embeddings.npz and the caption features
in DIR/text-features/, read back by the next run (embedding 100k items took about 7 minutes
on 2 cores), and each fit saves its training to DIR/checkpoints/PROTOCOL-SEED after every
epoch: a run that is killed resumes there when started again with the same arguments. A
finished fit's checkpoint is removed, unless ``--keep-checkpoints``: then the same command
again takes no training step (the generative fit and the dense baseline resume finished) and
goes straight to the fusion fits and the evaluation. The semantic IDs are kept too, in
DIR/fitted-ids/ (as a store keeps them: storage/build/fitted_ids.py): a new fit of them is
identical from one process to the next at 1k and 10k but not at 100k (the RQ-VAE's codes
differ), where a checkpoint fit on other IDs would not resume (docs/BENCHMARKS.md, "100,000
items, unseen protocol, at 24 examples per item").

Figures: means over every (generator seed, training seed, query), with 95% bootstrap
intervals over queries (1,000 resamples). At most ``--max-queries`` queries per protocol and
fit (a seeded sample).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.retrieval.dense import dense_search  # noqa: E402
from ace_core.retrieval.dense_index import EXACT_MAX  # noqa: E402
from ace_core.retrieval.evaluation import scored_sample  # noqa: E402
from ace_core.retrieval.fit import fit_retrieval  # noqa: E402
from ace_core.retrieval.fused_search import (  # noqa: E402
    corpus_inputs,
    fit_version_fusion,
    fused_search,
)
from ace_core.retrieval.fusion import GENERATIVE, Fusion, default_fusion  # noqa: E402
from ace_core.retrieval.generation import generative_search  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder, default_encoder_path  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from ace_core.retrieval.validation import ZeroShotInputs  # noqa: E402
from ace_core.retrieval.zero_shot import (  # noqa: E402
    merge_generated,
    tower_dense_search,
    tower_hits,
    tower_queries,
    zero_shot_search,
)
from ace_index.storage.build import fitted_ids  # noqa: E402
from ace_index.storage.formats.codebooks import load_indexer  # noqa: E402
from ace_index.storage.formats.semantic_id_table import read_semantic_ids  # noqa: E402
from ace_index.storage.formats.text_features import feature_source  # noqa: E402
from ace_index.storage.store.layout import VersionLayout  # noqa: E402
from bench.curve_hook import print_curve, recording  # noqa: E402
from bench.protocols import TINY, embed, protocol_queries, tiny_encoders, towers_of  # noqa: E402

PROTOCOLS = ("seen", "unseen", "caption-less")
BASELINES = ("text-tower dense (exact)", "dense caption baseline", "BM25 (training captions)")

SMOKE = ["--items", "24", "--seeds", "4040", "--train-seeds", "0", "--epochs", "1", "--curve"]


def ranks(hits, gold) -> np.ndarray:
    """Rank of each gold row in its top 10 (0: not there)."""
    out = []
    for row, g in zip(hits, gold):
        found = [r for r, *_ in row][:10]
        out.append(found.index(g) + 1 if g in found else 0)
    return np.array(out, np.int64)


def all_queries(protocol, ids, captions, fit_split, train_caps):
    """Every caption of each query item (seen: the split's held-out test captions)."""
    if protocol == "seen":
        return list(fit_split.test)
    return [(c, n) for n, i in enumerate(ids) if i in captions and i not in train_caps
            for c in captions[i].captions]  # fmt: skip


def sampled(queries: list, n: int, seed: int) -> list:
    if len(queries) <= n:
        return queries
    keep = np.random.default_rng(seed).choice(len(queries), n, replace=False)
    return [queries[i] for i in sorted(keep)]


@dataclass
class Trained:
    """A protocol's fit and its fused inputs: ``train_caps`` are the captions it trained on,
    ``started`` the clock when training began (after the semantic IDs)."""

    fit: object
    inputs: object
    train_caps: dict
    started: float


def trained(protocol, seed, data, enc, args) -> Trained:
    """The fit of training seed ``seed`` on the protocol (under ``--corpus``, resumed from
    DIR/checkpoints/PROTOCOL-SEED: a kept finished fit takes no training step)."""
    ids, x, modalities, captions, towers, paths = data
    train_caps, _ = protocol_queries(protocol, ids, captions, np.random.default_rng(1000 + seed))
    if protocol == "seen":
        train_caps = captions
    indexer, sids = corpus_ids(ids, x, args.corpus)
    t0 = time.perf_counter()
    train = TrainConfig(
        seed=seed, epochs=args.epochs, max_steps=args.max_steps or None,
        examples_per_item=args.examples_per_item or None, eval_every=args.eval_every,
        lr_decay=args.lr_decay, balance_index_task=args.balance_index_task,
        bridge_negatives=args.bridge_negatives or None,
    )
    unseen = None
    if args.curve and protocol == "unseen":
        unseen = sampled(all_queries(protocol, ids, captions, None, train_caps), 300, seed)
    config = RetrieverConfig(seed=seed, tied=not args.untied)
    with recording([], unseen, towers, modalities, x.shape[1], echo=args.curve) as curve:
        fit = fit_retrieval(
            ids, x, sids, indexer, train_caps, config=config, train=train, encoder=enc,
            dense=bool(train_caps), zero_shot=ZeroShotInputs(modalities, towers),
            features=args.features, checkpoint=checkpoint_of(args, protocol, seed),
        )
    if args.curve:
        print_curve(f"{protocol} seed {seed}", curve)
    item_paths = [paths[i] for i in ids]
    inp = corpus_inputs(fit.model, modalities, item_paths, towers, fit.split.train,
                        bool(train_caps))  # fmt: skip
    return Trained(fit, inp, train_caps, t0)


def corpus_ids(ids, x, corpus: str | None):
    """The corpus's semantic IDs (indexer, sids); under ``--corpus`` the first run's fit,
    kept in DIR/fitted-ids/ and read back by every later run."""
    config = SemanticIDConfig()
    if not corpus:
        return fit_semantic_ids(ids, x, config)
    with tempfile.TemporaryDirectory() as tmp:
        v = VersionLayout(Path(tmp))
        _, reused = fitted_ids.fit_or_reuse(corpus, v, ids, x, config)
        print(f"semantic IDs: {'the kept' if reused else 'a new'} fit in {corpus}/fitted-ids",
              flush=True)  # fmt: skip
        return load_indexer(v.codebooks), read_semantic_ids(v.semantic_ids)


def checkpoint_of(args, protocol: str, seed: int) -> Path | None:
    return Path(args.corpus) / "checkpoints" / f"{protocol}-{seed}" if args.corpus else None


def one_fit(protocol, seed, data, enc, args) -> dict[str, dict[str, np.ndarray]]:
    """{table: {method: ranks}}: the protocol's queries, and for ``unseen`` also the captioned
    items' held-out captions in the same version (what the fusion trades against)."""
    ids, x, captions = data[0], data[1], data[3]
    run = trained(protocol, seed, data, enc, args)
    fit, inp, train_caps, t0, dim = run.fit, run.inputs, run.train_caps, run.started, x.shape[1]
    checkpoint = checkpoint_of(args, protocol, seed)
    if checkpoint and not args.keep_checkpoints:
        shutil.rmtree(checkpoint, ignore_errors=True)  # done: the next run starts afresh
    val = scored_sample(fit.split, 500, 500, seed, set()).val
    record = fit_version_fusion(inp, val, 10)
    fusion = Fusion.from_record(record) if record else default_fusion(inp.present)
    weights = _weights(record)
    plain = fit_version_fusion(inp, val, 10, without=GENERATIVE)  # what generation adds
    present = [c for c in inp.present if c not in GENERATIVE]
    without = Fusion.from_record(plain) if plain else default_fusion(present)
    refit = _weights(plain)
    tables = {protocol: all_queries(protocol, ids, captions, fit.split, train_caps)}
    if protocol == "unseen":
        tables["unseen: captioned items' queries"] = list(fit.split.test)
    tables = {k: sampled(v, args.max_queries, seed) for k, v in tables.items()}
    out = {}
    for name, queries in tables.items():
        texts, gold = [q for q, _ in queries], [g for _, g in queries]
        out[name] = score_methods(inp, fusion, texts, gold, dim, without)
        r1 = ", ".join(f"{k} R@1 {np.mean(v == 1):.3f}" for k, v in out[name].items())
        steps = fit.generative_report.steps
        print(f"{name:12s} train seed {seed}: {len(texts)} queries, fit+eval "
              f"{time.perf_counter() - t0:.0f} s ({steps} steps), uncaptioned bias "
              f"{fit.generative_report.uncaptioned_bias}, fusion {weights}, "
              f"refit without generation {refit}; {r1}",
              flush=True)  # fmt: skip
    return out


def _weights(record: dict | None):
    """A fusion record's (weights, uncaptioned weights, saturated), as the bench prints it."""
    return record and (record["weights"], record["uncaptioned"], record["saturated"])


def score_methods(inp, fusion, texts, gold, dim, without) -> dict[str, np.ndarray]:
    model, spaces = inp.model, inp.spaces
    out = {"auto (fused)": ranks(fused_search(inp, texts, 10, fusion, 10)[0], gold)}
    no_gen = fused_search(inp, texts, 10, without, 10)[0]
    out["auto refit without generative components"] = ranks(no_gen, gold)
    queries = tower_queries(spaces, texts, dim)  # the towers' embeddings, once for every method
    zero = zero_shot_search(model.decoder, spaces, texts, dim, 10, 10, queries=queries)
    out["generative: zero-shot path"] = ranks(zero, gold)
    if inp.with_captions:
        feats = model.features(texts)
        caps = generative_search(model.decoder, feats, model.trie, 10, 10)
        out["generative: captions path"] = ranks(caps, gold)
        merged = merge_generated(model.decoder, caps, zero, 10)
        out["generative (both merged)"] = ranks(merged, gold)
        out["dense caption baseline"] = ranks(
            dense_search(model.dense, feats, model.item_emb, 10), gold
        )
        bm25 = inp.keywords
        out["BM25 (training captions)"] = ranks([bm25.search(t, 10) for t in texts], gold)
    out["text-tower dense (exact)"] = ranks(
        tower_dense_search(spaces, texts, model.item_emb, 10, queries), gold
    )
    if any(len(s.rows) > EXACT_MAX for s in spaces.values()):  # the fused path's own indexes
        ivf = tower_hits(spaces, queries, 10, len(texts), inp.index)
        out["text-tower dense (faiss IVF above 25k per space)"] = ranks(ivf, gold)
    return out


def metrics(r: np.ndarray) -> dict[str, np.ndarray]:
    hit = r > 0
    return {"R@1": r == 1, "R@5": hit & (r <= 5), "R@10": hit & (r <= 10),
            "MRR@10": np.where(hit, 1.0 / np.maximum(r, 1), 0.0)}  # fmt: skip


def with_interval(values: np.ndarray, rng) -> str:
    values = values.astype(np.float64)
    boots = values[rng.integers(len(values), size=(1000, len(values)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return f"{values.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def report(table: dict, args) -> None:
    rng = np.random.default_rng(0)
    where = (
        f"corpus {args.corpus}"
        if args.corpus
        else f"{args.world} world, {args.items} items, generator seeds {args.seeds}"
    )
    print(f"\n{where}, training seeds {args.train_seeds}, "
          f"epochs {args.epochs}, max steps {args.max_steps}")  # fmt: skip
    for protocol, rows in table.items():
        n = len(next(iter(rows.values())))
        print(f"\n**{protocol}** ({n} query results)\n")
        print("| method | R@1 | R@5 | R@10 | MRR@10 |\n|---|---|---|---|---|")
        for name, r in rows.items():
            m = metrics(r)
            print(f"| {name} | " + " | ".join(with_interval(m[k], rng) for k in m) + " |")


def write_corpus(out: Path, seed: int, args) -> None:
    n = args.items
    images, audio = n * 5 // 8, n // 4
    if args.world == "classic":
        from ace_core.synth import CorpusCounts, write_sample_corpus

        write_sample_corpus(out, seed=seed, counts=CorpusCounts(images, audio, n - images - audio))
    else:
        from ace_core.world import write_world_corpus

        write_world_corpus(out, {"image": images, "audio": audio, "video": n - images - audio},
                           seed=seed)  # fmt: skip


def embedded(corpus: Path, keep: bool):
    """``embed(corpus)``; with ``keep``, the embeddings are kept beside the corpus
    (embeddings.npz, keyed by the tiny encoders' manifest and the corpus's file count) and
    read back on the next run (100k items take about 7 min to embed)."""
    from ace_core.media.discovery import discover

    found, cache = discover(corpus), corpus / "embeddings.npz"
    key = hashlib.sha256((TINY / "tiny-encoders.json").read_bytes()).hexdigest()
    key += f"/{len(found.files)}"
    if keep and cache.exists() and str(np.load(cache)["key"]) == key:
        saved = np.load(cache)
        return (saved["ids"].tolist(), saved["x"], saved["modalities"].tolist(),
                found.captions, towers_of(tiny_encoders()[1]))  # fmt: skip
    ids, x, modalities, captions, towers = embed(corpus)
    if keep:
        np.savez(cache, ids=np.array(ids), x=x, modalities=np.array(modalities), key=key)
    return ids, x, modalities, captions, towers


def parser(description: str = __doc__.splitlines()[0]) -> argparse.ArgumentParser:
    """This bench's arguments (bench/uncaptioned_fusion.py takes them too, to resume its fits)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seeds", type=int, nargs="+", default=[4040, 4041])
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--examples-per-item", type=float, default=TrainConfig.examples_per_item,
                    help="the training budget (0: none; then --max-steps or --epochs)")
    ap.add_argument("--untied", action="store_true", help="the ACE decoder alone (before #40)")
    ap.add_argument("--features", default=None, metavar="DIR",
                    help="keep caption features in DIR/text-features, reused by later runs "
                    "(default with --corpus: the corpus folder; else in memory)")
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    ap.add_argument("--items", type=int, default=160)
    ap.add_argument("--max-steps", type=int, default=0, help="a step cap per fit (0: none)")
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--world", choices=["scenes", "classic"], default="scenes")
    ap.add_argument("--corpus", default=None, help="a corpus folder with captions.jsonl instead")
    ap.add_argument("--eval-every", type=int, default=1, help="validate every N epochs")
    ap.add_argument("--curve", action="store_true", help="print R@1 against training steps")
    ap.add_argument("--lr-decay", action=argparse.BooleanOptionalAction,
                    default=TrainConfig.lr_decay, help="train.lr_decay")  # fmt: skip
    ap.add_argument("--bridge-negatives", type=int, default=TrainConfig.bridge_negatives,
                    help="train.bridge_negatives (0: every item)")
    ap.add_argument("--balance-index-task", action=argparse.BooleanOptionalAction,
                    default=TrainConfig.balance_index_task,
                    help="train.balance_index_task")  # fmt: skip
    ap.add_argument(
        "--report-each-fit", action="store_true", help="print the tables after each fit"
    )
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="with --corpus: keep each finished fit's checkpoint, so that a run "
                    "with the same arguments evaluates it again without training")  # fmt: skip
    return ap


def main() -> None:
    args = parser().parse_args()
    enc = start(args)
    table: dict[str, dict[str, list]] = {}
    for seed in [None] if args.corpus else args.seeds:
        corpus = Path(args.corpus or tempfile.mkdtemp(prefix="ace-bench-fused-")) / (
            "" if args.corpus else "c"
        )
        if not args.corpus:
            write_corpus(corpus, seed, args)
        data = corpus_data(corpus, keep=bool(args.corpus))
        for protocol in args.protocols:
            for train_seed in args.train_seeds:
                for label, rows in one_fit(protocol, train_seed, data, enc, args).items():
                    for name, r in rows.items():
                        table.setdefault(label, {}).setdefault(name, []).append(r)
                if args.report_each_fit:  # long runs: the tables so far, in case one is cut
                    report(concatenated(table), args)
    report(concatenated(table), args)


def start(args):
    """Before any fit: torch's denormals flushed, the tiny encoders checked, the caption
    feature store chosen (``args.features``); returns the text encoder."""
    flush_denormals()  # as the flows do, before any torch work (training 2.3x faster)
    if not (TINY / "tiny-encoders.json").exists():
        sys.exit(f"no tiny encoders at {TINY}: run `ace tiny-encoders {TINY}` first")
    root = args.features or args.corpus
    args.features = feature_source(root, default_encoder_path()) if root else None
    return build_text_encoder(RetrieverConfig())


def corpus_data(corpus: Path, keep: bool) -> tuple:
    """(ids, embeddings, modalities, captions, towers, paths by item ID) of a corpus folder."""
    from ace_core.media.discovery import discover

    paths = {f.item_id: f.path for f in discover(corpus).files}
    return (*embedded(corpus, keep=keep), paths)


def concatenated(table: dict) -> dict:
    return {p: {k: np.concatenate(v) for k, v in rows.items()} for p, rows in table.items()}


if __name__ == "__main__":
    main()
