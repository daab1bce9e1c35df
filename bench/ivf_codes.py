"""Float IVF lists against the fused path's 8-bit-code lists with an exact re-score
(ace_core.retrieval.dense_index): query cost and recall of the exact top 10. Not a test.

  .venv/bin/python bench/ivf_codes.py [--items 1000000] [--runs 7]
  .venv/bin/python bench/ivf_codes.py --corpus DIR [--queries 500]
  .venv/bin/python bench/ivf_codes.py --crossover 5000 10000 25000 50000 100000

Without ``--corpus``: ``--items`` 512-d unit vectors around 2,000 random centres (the sizes
and list rule of the fused path), queries near random items; ms per query for batches of 32
(median of ``--runs`` batches after one warm-up), and recall of the exact top 10 on 256
queries. Both indexes have the same lists and probes.
With ``--corpus``: real embeddings (DIR/embeddings.npz kept by bench/fused_protocols.py) and
the text towers' queries, per item space, lists of 32 items (about the share of a 1M-item
index that lists of ITEMS_PER_LIST scan), as bench/ivf_lists.py.
``--crossover N ...``: where exact search stops being the cheaper one (EXACT_MAX): the
product's flat index against its IVF index at each size (the synthetic vectors above), ms per
query through ``dense_index.searched`` (batches of 32, median of 3 alternations of ``--runs``
batches each) and the IVF's recall of the exact top 10.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.retrieval import dense_index  # noqa: E402
from bench.ivf_lists import ivf, recall, space_queries  # noqa: E402

SMOKE = ["--items", "2000", "--runs", "1"]


def code_lists(x: np.ndarray, lists: int):
    """The product's index with ``lists`` lists (its size rule set aside for the real corpus)."""
    saved = dense_index.EXACT_MAX, dense_index.ITEMS_PER_LIST
    dense_index.EXACT_MAX, dense_index.ITEMS_PER_LIST = 0, max(1, len(x) // lists)
    try:
        return dense_index.item_index(x)
    finally:
        dense_index.EXACT_MAX, dense_index.ITEMS_PER_LIST = saved


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), np.float32)


def vectors(items: int) -> tuple[np.ndarray, np.ndarray]:
    """``items`` 512-d unit vectors around 2,000 random centres, and 256 queries near items."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 512)).astype(np.float32)
    x = np.empty((items, 512), np.float32)
    for s in range(0, items, 100_000):  # in slices: a single draw would need 4 GB more
        n = min(100_000, items - s)
        x[s : s + n] = unit(centres[rng.integers(2000, size=n)] + rng.standard_normal((n, 512)))
    q = unit(x[rng.integers(items, size=256)] + 0.5 * rng.standard_normal((256, 512)) / 22)
    return x, q


def synthetic(args) -> None:
    import faiss

    x, q = vectors(args.items)
    flat = faiss.IndexFlatIP(512)
    flat.add(x)
    exact = flat.search(q, 10)[1]
    del flat
    lists = max(int(np.sqrt(args.items)), args.items // dense_index.ITEMS_PER_LIST)
    for name, build in (("float lists", float_lists), ("8-bit codes + exact re-score", code_lists)):
        t0 = time.perf_counter()
        index = build(x, lists)
        built = time.perf_counter() - t0
        got = index.search(q, 10)[1]
        search = index.search
        ms = query_ms(lambda batch: search(batch, 10), q, args.runs)
        r10, same = recall(exact, got)
        print(f"{name}: {args.items:,} items, {lists} lists x {dense_index.IVF_PROBES} probes: "
              f"{ms:.3f} ms a query (median of {args.runs} batches of 32), "
              f"built in {built:.0f} s; recall@10 {r10:.3f}, same top-1 {same:.3f}",
              flush=True)  # fmt: skip
        del index


def float_lists(x: np.ndarray, lists: int):
    return ivf(x, lists, dense_index.IVF_PROBES)


def real(args) -> None:
    for name, xs, q, exact in space_queries(Path(args.corpus), args.queries):
        lists = len(xs) // 32
        for label, build in (("float lists", float_lists), ("8-bit codes", code_lists)):
            r10, same = recall(exact, build(xs, lists).search(q, 10)[1])
            print(f"{name}: {len(xs):,} items, {lists} lists x {dense_index.IVF_PROBES} probes, "
                  f"{label}: recall@10 {r10:.3f}, same top-1 {same:.3f}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--crossover", type=int, nargs="*", default=[])
    args = ap.parse_args()
    if args.crossover:
        crossover(args.crossover, args.runs)
    else:
        real(args) if args.corpus else synthetic(args)


def crossover(sizes: list[int], runs: int) -> None:
    """Exact against IVF search at each size (the product's list rule), paired in time."""
    for n in sizes:
        x, q = vectors(n)
        lists = max(int(np.sqrt(n)), n // dense_index.ITEMS_PER_LIST)
        flat, ivf = dense_index.flat_index(x), code_lists(x, lists)
        r10, _ = recall(flat.search(q, 10)[1], dense_index.searched(ivf, q, 10)[1])
        exact_ms, ivf_ms = [], []
        for _ in range(3):  # alternated: the machine drifts
            exact_ms.append(query_ms(lambda b: dense_index.searched(flat, b, 10), q, runs))
            ivf_ms.append(query_ms(lambda b: dense_index.searched(ivf, b, 10), q, runs))
        print(f"{n:,} items: exact {np.median(exact_ms):.3f} ms a query, IVF "
              f"{np.median(ivf_ms):.3f} ({ivf.index.nlist} lists x {dense_index.IVF_PROBES} "
              f"probes, recall@10 {r10:.3f})", flush=True)  # fmt: skip


def query_ms(search, q: np.ndarray, runs: int) -> float:
    """ms per query of ``search(batch)``, median of ``runs`` batches of 32 after one."""
    times = []
    for r in range(runs + 1):
        batch = q[(r * 32) % len(q) :][:32]
        t0 = time.perf_counter()
        search(batch)
        times.append((time.perf_counter() - t0) * 1000 / len(batch))
    return float(np.median(times[1:]))


if __name__ == "__main__":
    main()
