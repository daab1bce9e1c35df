"""Semantic IDs: (coarse, fine_1..fine_L, suffix), ACE style.

- coarse: faiss K-Means cluster of the L2-normalised embedding;
- fine: RQ-VAE codes of the residual ``embedding - centroid[coarse]``;
- suffix: 0, 1, 2 ... in item_id order among items whose (coarse, fine) collide.

Ablation modes (same ID shape): ``no_coarse`` (one cluster with a zero centroid: the RQ-VAE
sees the raw embedding), ``hkmeans`` (hierarchical k-means instead of the RQ-VAE, DSI style),
``random`` (uniform random tokens).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ace_core.errors import AceInputError
from ace_core.ids.kmeans import KMeansConfig, assign_nearest, fit_kmeans
from ace_core.ids.quality import quality_report
from ace_core.ids.rqvae import (
    RQVAE,
    RQVAEConfig,
    effective_codebook_size,
    rq_decode,
    rq_encode,
    train_rqvae,
)
from ace_core.ids.sids import SemanticIDs

logger = logging.getLogger(__name__)

MODES = ("ace", "no_coarse", "hkmeans", "random")


@dataclass(frozen=True)
class SemanticIDConfig:
    mode: str = "ace"  # ace | no_coarse | hkmeans | random (ablations)
    kmeans: KMeansConfig = KMeansConfig()
    rqvae: RQVAEConfig = RQVAEConfig()
    faiss_reference: bool = True  # also fit faiss.ResidualQuantizer for the quality report


@dataclass
class SemanticIndexer:
    """The fitted, frozen parts that turn embeddings into IDs."""

    config: SemanticIDConfig
    centroids: np.ndarray  # float32 (k, d)
    rqvae: RQVAE | None  # None in hkmeans/random modes
    codebook_size: int
    report: dict = field(default_factory=dict)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(coarse (n,), fine (n, L)) of embeddings with the frozen centroids and RQ-VAE."""
        if self.rqvae is None:
            raise AceInputError(f"mode {self.config.mode!r} IDs cannot be extended incrementally")
        coarse = assign_nearest(self.centroids, x)
        return coarse, rq_encode(self.rqvae, x - self.centroids[coarse])

    def assign(self, item_ids: Sequence[str], x: np.ndarray, existing: SemanticIDs) -> SemanticIDs:
        """IDs for new items; existing IDs never change, collisions take the next free suffix."""
        validate_embeddings(item_ids, x, self.centroids.shape[1])
        clash = set(item_ids) & set(existing.item_ids)
        if clash:
            raise AceInputError(f"{len(clash)} items already have IDs, e.g. {sorted(clash)[0]}")
        order = np.argsort(list(item_ids), kind="stable")
        ids = [item_ids[i] for i in order]
        coarse, fine = self.encode(np.asarray(x, np.float32)[order])
        next_free: dict[tuple, int] = {}
        for c, f, s in zip(existing.coarse, existing.fine, existing.suffix):
            key = (int(c), *map(int, f))
            next_free[key] = max(next_free.get(key, 0), int(s) + 1)
        suffix = np.zeros(len(ids), np.int64)
        for i, (c, f) in enumerate(zip(coarse, fine)):
            key = (int(c), *map(int, f))
            suffix[i] = next_free.get(key, 0)
            next_free[key] = suffix[i] + 1
        return SemanticIDs(ids, coarse, fine, suffix)

    def extend(
        self,
        existing: SemanticIDs,
        item_ids: Sequence[str],
        x: np.ndarray,
        reserved: SemanticIDs | None = None,
    ) -> tuple[SemanticIDs, dict]:
        """``existing`` plus IDs for the items of ``item_ids`` (rows of ``x``) that it lacks,
        and the quality report of the result. New suffixes avoid every ID of ``reserved``
        (default: ``existing``), so an ID once given never names another item."""
        known = set(existing.item_ids)
        new_rows = [i for i, item in enumerate(item_ids) if item not in known]
        merged = existing
        if new_rows:
            taken = reserved if reserved is not None else existing
            added = self.assign([item_ids[i] for i in new_rows], x[new_rows], taken)
            merged = existing.concat(added)
        report = {
            **self.report,
            "n_items": len(merged.item_ids),
            "new_items": len(new_rows),
            "collision_rate": round(float((merged.suffix > 0).mean()), 4),
            "max_suffix": int(merged.suffix.max(initial=0)),
        }
        return merged, report


def validate_embeddings(item_ids: Sequence[str], x: np.ndarray, dim: int | None = None) -> None:
    """Raise AceInputError naming the offending items before any training starts."""
    if len(item_ids) == 0:
        raise AceInputError("no embeddings: the corpus has no successfully embedded item")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != len(item_ids):
        raise AceInputError(f"embeddings have shape {x.shape}, expected ({len(item_ids)}, d)")
    if dim is not None and x.shape[1] != dim:
        raise AceInputError(f"embeddings are {x.shape[1]}-d, the index expects {dim}-d")
    seen, dups = set(), []
    for i in item_ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    if dups:
        raise AceInputError(f"{len(dups)} duplicate item_ids, e.g. {_names(dups)}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise AceInputError(
            f"{int(bad.sum())} embeddings hold NaN/inf: "
            f"{_names([item_ids[i] for i in np.flatnonzero(bad)])}"
        )
    zero = np.linalg.norm(x, axis=1) < 1e-8
    if zero.any():
        raise AceInputError(
            f"{int(zero.sum())} embeddings have zero norm: "
            f"{_names([item_ids[i] for i in np.flatnonzero(zero)])}"
        )


def _names(ids: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(i[:12] for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def assign_suffixes(item_ids: Sequence[str], coarse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """0, 1, 2 ... in item_id order within each (coarse, fine) group. ``item_ids`` sorted."""
    counters: dict[tuple, int] = {}
    suffix = np.zeros(len(item_ids), np.int64)
    for i in np.argsort(list(item_ids), kind="stable"):
        key = (int(coarse[i]), *map(int, fine[i]))
        suffix[i] = counters.get(key, 0)
        counters[key] = suffix[i] + 1
    return suffix


def fit_semantic_ids(
    item_ids: Sequence[str], x: np.ndarray, config: SemanticIDConfig = SemanticIDConfig()
) -> tuple[SemanticIndexer, SemanticIDs]:
    """Fit coarse + fine quantizers on all items and return the indexer and their IDs."""
    if config.mode not in MODES:
        raise AceInputError(f"unknown semantic ID mode {config.mode!r} (one of {MODES})")
    validate_embeddings(item_ids, x)
    order = np.argsort(list(item_ids), kind="stable")
    ids = [item_ids[i] for i in order]
    x = l2n(np.asarray(x, np.float32)[order])
    n, d = x.shape
    if config.mode == "random":
        return _random_ids(ids, d, config)
    if config.mode == "no_coarse":
        km_centroids, coarse, km_obj, km_imb = (
            np.zeros((1, d), np.float32),
            np.zeros(n, np.int64),
            0.0,
            1.0,
        )
    else:
        km = fit_kmeans(x, config.kmeans)
        km_centroids, coarse, km_obj, km_imb = (
            km.centroids,
            km.assignment,
            km.objective,
            km.imbalance,
        )
    residual = x - km_centroids[coarse]
    if config.mode == "hkmeans":
        K = effective_codebook_size(n, config.rqvae)
        fine = hierarchical_kmeans_codes(
            residual, coarse, config.rqvae.levels, K, config.kmeans.seed
        )
        model, recon = None, None
    else:
        fit = train_rqvae(residual, config.rqvae)
        model, K = fit.model, fit.model.codebook_size
        fine = rq_encode(model, residual)
        recon = rq_decode(model, fine)
    suffix = assign_suffixes(ids, coarse, fine)
    sids = SemanticIDs(ids, coarse, fine, suffix)
    indexer = SemanticIndexer(config, km_centroids, model, K)
    indexer.report = quality_report(
        sids,
        residual,
        recon,
        K,
        mode=config.mode,
        faiss_reference=config.faiss_reference,
        km_obj=km_obj,
        km_imb=km_imb,
    )
    return indexer, sids


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _random_ids(ids: list[str], d: int, config: SemanticIDConfig):
    from ace_core.ids.kmeans import effective_k

    rng = np.random.default_rng(config.rqvae.seed)
    n, L = len(ids), config.rqvae.levels
    k = effective_k(n, config.kmeans)
    K = effective_codebook_size(n, config.rqvae)
    coarse = rng.integers(0, k, n)
    fine = rng.integers(0, K, (n, L))
    sids = SemanticIDs(ids, coarse, fine, assign_suffixes(ids, coarse, fine))
    indexer = SemanticIndexer(config, np.zeros((k, d), np.float32), None, K)
    indexer.report = quality_report(
        sids,
        None,
        None,
        K,
        mode=config.mode,
        faiss_reference=config.faiss_reference,
        km_obj=0.0,
        km_imb=1.0,
    )
    return indexer, sids


def hierarchical_kmeans_codes(
    residual: np.ndarray, coarse: np.ndarray, levels: int, k: int, seed: int
) -> np.ndarray:
    """DSI-style codes: level l is a k-means cluster within the items sharing the prefix."""
    n = residual.shape[0]
    codes = np.zeros((n, levels), np.int64)
    groups = [np.flatnonzero(coarse == c) for c in np.unique(coarse)]
    for level in range(levels):
        next_groups = []
        for g in groups:
            if len(g) <= k:  # small group: every member gets its own code
                codes[g, level] = np.arange(len(g))
                next_groups.extend([g[i : i + 1] for i in range(len(g))])
                continue
            km = fit_kmeans(residual[g], KMeansConfig(k=k, niter=10, seed=seed + level))
            codes[g, level] = km.assignment
            next_groups.extend(
                g[km.assignment == j] for j in range(k) if (km.assignment == j).any()
            )
        groups = next_groups
    return codes
