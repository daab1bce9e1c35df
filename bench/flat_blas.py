"""faiss's exact inner-product search, its own choice against the product's (matrix product
from BLAS_FROM, ace_core.retrieval.dense_index.searched), by batch size. Not a test.

  .venv/bin/python bench/flat_blas.py [--sizes 1000 3125 25000 200000] [--runs 7]

Random 512-d vectors; ms per batch (median of ``--runs``) for batches of 1 to 32 queries, k 10.
3,125 is the coarse quantizer of a 1M-item IVF index; 25,000 the largest exact index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.retrieval.dense_index import BLAS_FROM, flat_index, searched  # noqa: E402
from bench.timing import median_time  # noqa: E402

SMOKE = ["--sizes", "1000", "--runs", "1"]


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3125, 25000, 200000])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    default = faiss.cvar.distance_compute_blas_threshold
    print(f"faiss {faiss.__version__}: BLAS from nq x d = {default:,}; here from {BLAS_FROM:,}\n")
    print("| items | queries | faiss's choice ms | searched ms | speed-up |\n|---|---|---|---|---|")
    for n in args.sizes:
        index = flat_index(rng.standard_normal((n, 512), dtype=np.float32))
        for nq in (1, 2, 4, 8, 16, 32):
            q = rng.standard_normal((nq, 512), dtype=np.float32)
            own = median_time(lambda: index.search(q, 10), args.runs) * 1000
            ours = median_time(lambda: searched(index, q, 10), args.runs) * 1000
            print(f"| {n:,} | {nq} | {own:.3f} | {ours:.3f} | {own / ours:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
