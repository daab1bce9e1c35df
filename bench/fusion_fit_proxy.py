"""How the fusion fit treats items without training captions, without training a retriever
(issue 23: fused R@1 below the towers' on unseen items at 100k). Not a test.

  .venv/bin/python bench/fusion_fit_proxy.py --corpus DIR [--seed 0] [--max-queries 1000]
                                             [--scan]

The unseen protocol of bench/fused_protocols.py on a corpus whose embeddings it kept
(DIR/embeddings.npz), but only with the components that need no training: the text towers'
exact search and BM25 over the training captions (plus an all-zero captions column, so that
the fit scores the blinded half as a version with a caption-trained path does). The weights
are fit by ace_core.retrieval.fusion.fit_fusion on the split's validation queries exactly as
a build fits them, then scored on the held-out items' queries and on the captioned items'
test queries, beside the towers alone and BM25 alone. ``--scan``: R@1 at each uncaptioned scale
from 0.80 to 1.20 with the fitted captioned weights held (validation queries as they are and
blinded, the held-out items' queries, the captioned items' test queries).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.retrieval import fusion as F  # noqa: E402
from ace_core.retrieval.evaluation import scored_sample, split_queries  # noqa: E402
from ace_core.retrieval.fused_search import (  # noqa: E402
    FusedInputs,
    component_table,
    spaces_of_rows,
    trained_rows,
    training_keywords,
)
from ace_core.retrieval.fusion import COMPONENTS, Fusion, fit_fusion, fused  # noqa: E402
from ace_core.retrieval.zero_shot import TextSpace  # noqa: E402
from bench.fused_protocols import all_queries, embedded, ranks, sampled  # noqa: E402
from bench.protocols import protocol_queries  # noqa: E402

PRESENT = ["captions", "text_tower", "bm25"]

SMOKE = ["--corpus", "{corpus}", "--max-queries", "50"]


def inputs(corpus: Path, seed: int, max_queries: int = 1000):
    from ace_core.media.discovery import discover

    ids, x, modalities, captions, towers = embedded(corpus, keep=True)
    paths = {f.item_id: f.path for f in discover(corpus).files}
    train_caps, _ = protocol_queries("unseen", ids, captions, np.random.default_rng(1000 + seed))
    split = split_queries(ids, train_caps, seed=seed)
    space = spaces_of_rows(modalities)
    spaces = {
        name: TextSpace(embed_text, np.flatnonzero(space == name), None)
        for name, embed_text in towers.items()
    }
    captioned = trained_rows(len(ids), split.train)
    keywords = training_keywords([paths[i] for i in ids], split.train)
    model = SimpleNamespace(item_emb=np.ascontiguousarray(x, np.float32))
    inp = FusedInputs(model, np.arange(len(ids)), None, spaces, False, captioned, space,
                      keywords=keywords)  # fmt: skip
    tables = {
        "validation": scored_sample(split, 500, 500, seed, set()).val,
        "unseen": all_queries("unseen", ids, captions, split, train_caps),
        "captioned items' test": list(split.test),
    }
    return inp, {k: sampled(v, max_queries, seed) for k, v in tables.items()}


def table_of(inp, queries):
    return component_table(inp, [t for t, _ in queries], 10, 10, only=["text_tower", "bm25"])


def r_at_1(hits, gold) -> float:
    return float(np.mean(ranks(hits, gold) == 1))


def alone(table, name):
    col = COMPONENTS.index(name)
    return [[(int(c.rows[i]), 0.0) for i in np.lexsort((c.rows, -c.features[:, col]))[:10]]
            for c in table]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--scan", action="store_true", help="R@1 at each scale from 0.80 to 1.20")
    args = ap.parse_args()
    t = time.perf_counter()
    inp, queries = inputs(Path(args.corpus), args.seed, args.max_queries)
    tables = {k: (table_of(inp, q), [g for _, g in q]) for k, q in queries.items()}
    print(f"{inp.keywords.n:,} items, {int(inp.captioned.sum()):,} captioned; "
          f"tables in {time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    val_table, val_gold = tables.pop("validation")
    record = fit_fusion(val_table, val_gold, PRESENT, inp.captioned)
    fusion = Fusion.from_record(record)
    print(f"fit on {len(val_gold)} validation queries: {record}")
    for name, (table, gold) in tables.items():
        r1 = {"fused": r_at_1(fused(table, fusion, inp.captioned, 10), gold),
              "towers": r_at_1(alone(table, "text_tower"), gold),
              "BM25": r_at_1(alone(table, "bm25"), gold)}  # fmt: skip
        print(
            f"{name} ({len(gold)} queries): R@1 " + ", ".join(f"{k} {v:.3f}" for k, v in r1.items())
        )
    if args.scan:
        scan(record, (val_table, val_gold), tables, inp.captioned)


def scan(record, val, tables, captioned) -> None:
    """R@1 per uncaptioned scale, the captioned weights held at the fit's."""
    scales = np.round(np.arange(0.80, 1.21, 0.02), 2)
    grid = F.weight_vector(record["weights"])[None]
    ugrid = np.zeros((len(scales), len(COMPONENTS)), np.float32)
    ugrid[:, COMPONENTS.index("text_tower")] = scales
    runs = {"validation": (*val, False), "validation blinded": (*val, True)}
    runs.update({name: (*tg, False) for name, tg in tables.items()})
    r1 = {name: (F.reciprocal_ranks(t, g, captioned, grid, ugrid, blind=b)[:, 0] == 1).mean(0)
          for name, (t, g, b) in runs.items()}  # fmt: skip
    print("scale | " + " | ".join(r1))
    for j, scale in enumerate(scales):
        print(f"{scale:.2f} | " + " | ".join(f"{v[j]:.3f}" for v in r1.values()))


if __name__ == "__main__":
    main()
