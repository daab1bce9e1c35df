"""How much of the exact top 10 faiss IVF keeps on real embeddings, at the fused path's list
sizes (ace_core.retrieval.dense_index). Not a test.

  .venv/bin/python bench/ivf_lists.py --corpus DIR [--queries 500] [--probes 16 8 4]

A corpus whose embeddings bench/fused_protocols.py kept (DIR/embeddings.npz, the tiny
encoders); the queries are the text towers' embeddings of one caption each of a seeded
sample of items. Per item space: exact inner-product search (faiss flat) against IVF with
sqrt(n) lists and with lists of 32 items (about the fraction of a 1M-item index that lists of
ITEMS_PER_LIST items scan), at each number of probes: recall of the exact top 10, and how
often the top-1 is the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.media.encoders import to_common_dim  # noqa: E402
from ace_core.retrieval.dense_index import TRAIN_PER_LIST  # noqa: E402
from ace_core.retrieval.fused_search import spaces_of_rows  # noqa: E402
from bench.fused_protocols import embedded, sampled  # noqa: E402

SMOKE = ["--corpus", "{corpus}", "--queries", "20", "--probes", "4"]


def ivf(x: np.ndarray, lists: int, probes: int):
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], lists,
                               faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    sample = np.random.default_rng(0).choice(len(x), min(len(x), TRAIN_PER_LIST * lists), False)
    index.train(x[np.sort(sample)])
    index.add(x)
    index.nprobe = probes
    return index


def space_queries(corpus: Path, queries: int):
    """Per item space of a kept corpus: (name, its embeddings, the towers' embeddings of one
    caption each of a seeded sample of items, their exact top 10 rows)."""
    import faiss

    ids, x, modalities, captions, towers = embedded(corpus, keep=True)
    first = [(captions[i].captions[0], n) for n, i in enumerate(ids) if i in captions]
    texts = [t for t, _ in sampled(first, queries, 0)]
    space = spaces_of_rows(modalities)
    for name, embed_text in towers.items():
        xs = np.ascontiguousarray(x[space == name], np.float32)
        q = np.ascontiguousarray(to_common_dim(embed_text(texts), xs.shape[1]), np.float32)
        flat = faiss.IndexFlatIP(xs.shape[1])
        flat.add(xs)
        yield name, xs, q, flat.search(q, 10)[1]


def recall(exact: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(recall of the exact top k, share of queries with the same top 1)."""
    r = np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(exact, got)])
    return float(r), float(np.mean(exact[:, 0] == got[:, 0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--probes", type=int, nargs="+", default=[16, 8, 4])
    args = ap.parse_args()
    for name, xs, q, exact in space_queries(Path(args.corpus), args.queries):
        n = len(xs)
        for lists in (int(np.sqrt(n)), n // 32):
            for probes in args.probes:
                r10, same = recall(exact, ivf(xs, lists, probes).search(q, 10)[1])
                print(f"{name}: {n:,} items, {lists} lists x {probes} probes: "
                      f"recall@10 {r10:.3f}, same top-1 {same:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
