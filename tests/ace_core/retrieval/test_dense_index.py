"""Exact and approximate searches of the dense indexes (ace_core/retrieval/dense_index.py)."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from ace_core.retrieval import dense_index


class _Recording:
    """A faiss-like index that records faiss's BLAS threshold while it searches."""

    ntotal = 100

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def search(self, queries, k):
        self.seen.append(faiss.cvar.distance_compute_blas_threshold)
        return self.inner.search(queries, k)


def test_a_batch_of_queries_is_one_matrix_product_and_finds_the_exact_top_k():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((100, 512)).astype(np.float32)
    queries = rng.standard_normal((32, 512)).astype(np.float32)
    before = faiss.cvar.distance_compute_blas_threshold
    index = _Recording(dense_index.flat_index(emb))
    found = dense_index.top_rows(index, queries, 5, np.arange(100))
    assert index.seen == [dense_index.BLAS_FROM] and 32 * 512 >= dense_index.BLAS_FROM
    assert faiss.cvar.distance_compute_blas_threshold == before  # k-means keeps faiss's own
    scores = queries @ emb.T
    for q, row in enumerate(found):
        assert [r for r, _ in row] == np.argsort(-scores[q])[:5].tolist()
        assert np.allclose([s for _, s in row], np.sort(scores[q])[::-1][:5], atol=1e-4)


def test_concurrent_searches_restore_faiss_s_threshold_when_the_last_one_ends():
    before = faiss.cvar.distance_compute_blas_threshold
    inside, release = threading.Barrier(3), threading.Event()

    class Waiting:
        ntotal = 1

        def search(self, queries, k):
            inside.wait(5)
            release.wait(5)
            return np.zeros((len(queries), k), np.float32), np.zeros((len(queries), k), np.int64)

    threads = [threading.Thread(target=dense_index.searched, args=(Waiting(), np.zeros((1, 4)), 1))
               for _ in range(2)]  # fmt: skip
    for t in threads:
        t.start()
    inside.wait(5)
    assert faiss.cvar.distance_compute_blas_threshold == dense_index.BLAS_FROM
    release.set()
    for t in threads:
        t.join()
    assert faiss.cvar.distance_compute_blas_threshold == before
