"""Coarse token: faiss K-Means over L2-normalised embeddings (all modalities in one space)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KMeansConfig:
    k: int | None = None  # clusters; None: auto_k(n)
    niter: int = 20  # Lloyd iterations
    seed: int = 0  # faiss k-means seed
    max_points_per_centroid: int = 256  # faiss subsampling for training (its default)


def auto_k(n: int) -> int:
    """Default number of coarse clusters: about sqrt(n / 2), between 1 and 1024.

    100 items -> 7, 10k -> 71, 100k -> 224, 1M -> 707: clusters stay a few hundred items big so
    the fine tokens have room to separate them.
    """
    return int(min(1024, max(1, round(math.sqrt(n / 2)))))


@dataclass
class KMeansResult:
    centroids: np.ndarray  # float32 (k, d)
    assignment: np.ndarray  # int64 (n,)
    objective: float  # final sum of squared distances (faiss obj)
    imbalance: float  # k * sum(size^2) / n^2 (1.0 = perfectly balanced)


def effective_k(n: int, config: KMeansConfig) -> int:
    k = config.k or auto_k(n)
    if n < k:
        logger.warning("k-means: %d items < k=%d; using k=%d", n, k, n)
        k = n
    return max(1, k)


def fit_kmeans(x: np.ndarray, config: KMeansConfig = KMeansConfig()) -> KMeansResult:
    """faiss.Kmeans on float32 (n, d); returns centroids and the assignment of ``x``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    k = effective_k(n, config)
    km = faiss.Kmeans(
        d,
        k,
        niter=config.niter,
        seed=config.seed,
        verbose=False,
        max_points_per_centroid=config.max_points_per_centroid,
        min_points_per_centroid=1,
    )  # small clusters are expected: no warning
    km.train(x)
    assignment = assign_nearest(km.centroids, x)
    obj = float(km.obj[-1]) if len(km.obj) else 0.0
    return KMeansResult(
        np.ascontiguousarray(km.centroids, dtype=np.float32),
        assignment,
        obj,
        imbalance_factor(assignment, k),
    )


def assign_nearest(centroids: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (L2) for each row of ``x``: int64 (n,)."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return idx[:, 0].astype(np.int64)


def imbalance_factor(assignment: np.ndarray, k: int) -> float:
    sizes = np.bincount(assignment, minlength=k).astype(np.float64)
    n = sizes.sum()
    return float(k * (sizes**2).sum() / (n * n)) if n else 0.0
