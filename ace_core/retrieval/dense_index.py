"""Inner-product indexes over item embeddings for the dense components of the fused path:
exact (faiss flat) up to EXACT_MAX items, faiss IVF above, so that a query's cost stays about
flat to 1M items (docs/BENCHMARKS.md, "Query cost against corpus size").

The IVF lists hold 8-bit codes of the embeddings (faiss scalar quantizer): a probe reads a
quarter of the bytes a float list would, and scanning the lists is what a query pays for at 1M
items. The shortlist the codes find (SHORTLIST x k) is then scored exactly on the float
embeddings, so the scores returned are exact inner products."""

from __future__ import annotations

import threading

import numpy as np

# measured (bench/ivf_codes.py --crossover): with BLAS, exact and IVF search cost the same at
# 10k items (0.1 ms a query in a batch of 32); at 25k exact costs 0.29 ms against IVF's 0.14,
# kept for exact results up to here (IVF's top 10 is approximate)
EXACT_MAX = 25_000
IVF_PROBES = 16
TRAIN_PER_LIST = 40  # faiss asks for at least 39 training points per list
# Above 100k items the lists stay about this size (sqrt(n) lists would grow them, and a query's
# scan with them: at 1M, 16 of 1,000 lists were 5 ms of a 16 ms fused query). On the 100k world
# scanning a tenth as much (lists of 32) kept the towers' top 10 (recall 0.97-1.0, BENCHMARKS).
ITEMS_PER_LIST = 320
SHORTLIST = 4  # the codes' top SHORTLIST x k are re-scored on the float embeddings
# faiss 1.15 multiplies matrices (BLAS) only from nq x d = 128,000 (tuned for many cores); on
# 2 cores BLAS is as fast from 8 queries of 512-d and 2.5-7x faster from 16 (bench/flat_blas.py)
BLAS_FROM = 8 * 512


def flat_index(emb: np.ndarray):
    """A faiss flat (exact) inner-product index over ``emb`` (rows in order)."""
    import faiss

    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(np.ascontiguousarray(emb, dtype=np.float32))
    return index


def item_index(emb: np.ndarray, seed: int = 0):
    """A faiss inner-product index over ``emb`` (rows in order): flat up to EXACT_MAX rows,
    IVF above with about sqrt(n) lists up to 100k rows and lists of about ITEMS_PER_LIST rows
    past it (trained on a seeded sample), so a query scans about as many rows at 1M as at 100k;
    its lists hold 8-bit codes and its shortlist is re-scored exactly (``Rescored``)."""
    import faiss

    x = np.ascontiguousarray(emb, dtype=np.float32)
    n, d = x.shape
    if n <= EXACT_MAX:
        return flat_index(x)
    lists = max(int(np.sqrt(n)), n // ITEMS_PER_LIST)
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sample = np.random.default_rng(seed).choice(n, min(n, TRAIN_PER_LIST * lists), False)
    index.train(x[np.sort(sample)])
    index.nprobe = IVF_PROBES
    index.add(x)
    return Rescored(index, x)


class Rescored:
    """An approximate index whose shortlist is scored exactly on the float embeddings (the
    faiss ``search`` / ``ntotal`` interface of the indexes it wraps)."""

    def __init__(self, index, emb: np.ndarray):
        self.index, self.emb, self.ntotal = index, emb, index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, found = self.index.search(queries, min(SHORTLIST * k, self.ntotal))
        scores = np.einsum("qd,qkd->qk", queries, self.emb[np.maximum(found, 0)])
        scores[found < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores, found = np.take_along_axis(scores, order, 1), np.take_along_axis(found, order, 1)
        found[~np.isfinite(scores)] = -1
        return scores, found


def searched(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` (scores, ids) of the top min(k, ntotal), with faiss's matrix product
    from BLAS_FROM (its exact scans and IVF coarse quantizers; restored afterwards, so
    k-means elsewhere keeps faiss's own choice)."""
    with _blas_threshold:
        return index.search(np.ascontiguousarray(queries, np.float32), min(k, index.ntotal))


class _BlasThreshold:
    """faiss's BLAS threshold at BLAS_FROM while any search here runs (counted: threads)."""

    def __init__(self):
        self.lock, self.active, self.saved = threading.Lock(), 0, None

    def __enter__(self):
        import faiss

        with self.lock:
            if not self.active:
                self.saved = faiss.cvar.distance_compute_blas_threshold
                faiss.cvar.distance_compute_blas_threshold = BLAS_FROM
            self.active += 1

    def __exit__(self, *exc):
        import faiss

        with self.lock:
            self.active -= 1
            if not self.active:
                faiss.cvar.distance_compute_blas_threshold = self.saved


_blas_threshold = _BlasThreshold()


def top_rows(index, queries: np.ndarray, k: int, rows: np.ndarray) -> list[list[tuple[int, float]]]:
    """Top-k (row, inner product) per query; ``rows[i]`` is the row of the index's i-th item."""
    scores, found = searched(index, queries, k)
    return [
        [(int(rows[i]), float(s)) for i, s in zip(f, sc) if i >= 0] for f, sc in zip(found, scores)
    ]
