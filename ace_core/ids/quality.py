"""Quality of semantic IDs: utilisation, perplexity, collisions and reconstruction error,
with a same-budget faiss.ResidualQuantizer fitted on the same residuals as the reference."""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np

from ace_core.ids.rqvae import train_faiss_rq

logger = logging.getLogger(__name__)


class IDCodes(Protocol):
    """The token arrays of a set of semantic IDs (what the quality figures read; SemanticIDs
    has them)."""

    coarse: np.ndarray  # int (n,)
    fine: np.ndarray  # int (n, L)
    suffix: np.ndarray  # int (n,)


def quality_report(
    sids: IDCodes,
    residual: np.ndarray | None,
    recon: np.ndarray | None,
    K: int,
    *,
    mode: str,
    faiss_reference: bool,
    km_obj: float,
    km_imb: float,
) -> dict:
    """Quality figures (keys as in DESIGN "JSON output") of ``sids``."""
    n, L = sids.fine.shape
    utilization, perplexity = [], []
    for level in range(L):
        used = np.unique(sids.fine[:, level]).size
        utilization.append(round(float(used / K), 4))
        perplexity.append(round(_perplexity(sids.fine[:, level], K), 3))
    rel, ref = None, {}
    if residual is not None and recon is not None:
        rel = relative_error(residual, recon)
        if faiss_reference:
            try:
                ref = faiss_rq_reference(residual, L, K, coarse=sids.coarse)
            except RuntimeError as e:  # faiss refuses degenerate inputs (e.g. one point)
                logger.info(
                    "faiss ResidualQuantizer reference skipped: %s", str(e).splitlines()[0][:160]
                )
    return {
        "n_items": n,
        "mode": mode,
        "k": int(sids.coarse.max()) + 1 if n else 0,
        "levels": L,
        "codebook_size": K,
        "collision_rate": round(float((sids.suffix > 0).sum() / n), 4) if n else 0.0,
        "max_suffix": int(sids.suffix.max()) if n else 0,
        "utilization": utilization,
        "perplexity": perplexity,
        "rel_recon_error": None if rel is None else round(rel, 5),
        "faiss_rq_rel_recon_error": (
            round(ref["rel_recon_error"], 5) if "rel_recon_error" in ref else None
        ),
        "faiss_rq_collision_rate": ref.get("collision_rate"),
        "faiss_rq_perplexity": ref.get("perplexity"),
        "kmeans_objective": round(km_obj, 4),
        "kmeans_imbalance": round(km_imb, 4),
    }


def relative_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    denom = float((x.astype(np.float64) ** 2).sum())
    return float(((x - x_hat).astype(np.float64) ** 2).sum() / denom) if denom > 0 else 0.0


def faiss_rq_relative_error(x: np.ndarray, levels: int, K: int, max_points: int = 20_000) -> float:
    """Same budget reference: faiss.ResidualQuantizer with ``levels`` x log2(K) bits."""
    return faiss_rq_reference(x, levels, K, max_points=max_points)["rel_recon_error"]


def faiss_rq_reference(
    x: np.ndarray,
    levels: int,
    K: int,
    *,
    coarse: np.ndarray | None = None,
    max_points: int = 20_000,
) -> dict:
    """faiss.ResidualQuantizer with the same budget on the same residuals: its relative
    reconstruction error, code perplexity per level and, with the items' ``coarse`` tokens,
    the collision rate its codes would give (share of items needing a suffix > 0).

    Trained and measured on a seeded subsample of at most ``max_points`` rows (faiss' RQ
    training costs more than our whole ID fit on large corpora); ``rows`` says which."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows = np.arange(x.shape[0])
    if x.shape[0] > max_points:
        rows = np.sort(np.random.default_rng(0).choice(x.shape[0], max_points, replace=False))
        x = np.ascontiguousarray(x[rows])
    nbits = int(math.log2(K))
    rq = train_faiss_rq(x, levels, K)
    packed = rq.compute_codes(x)
    codes = unpack_codes(packed, levels, nbits)
    out = {
        "rel_recon_error": relative_error(x, rq.decode(packed)),
        "perplexity": [round(_perplexity(codes[:, lv], K), 3) for lv in range(levels)],
        "rows": rows,
    }
    if coarse is not None:
        out["collision_rate"] = collision_rate(np.asarray(coarse)[rows], codes)
    return out


def unpack_codes(packed: np.ndarray, levels: int, nbits: int) -> np.ndarray:
    """faiss' packed codes (least significant bit first) -> int64 (n, levels)."""
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, : levels * nbits]
    weights = 1 << np.arange(nbits, dtype=np.int64)
    return bits.reshape(len(packed), levels, nbits).astype(np.int64) @ weights


def collision_rate(coarse: np.ndarray, fine: np.ndarray) -> float:
    """Share of items whose (coarse, fine) key another item already has (suffix > 0)."""
    n = len(fine)
    if not n:
        return 0.0
    keys = np.concatenate([np.asarray(coarse, np.int64)[:, None], fine], axis=1)
    return round(float((n - len(np.unique(keys, axis=0))) / n), 4)


def _perplexity(codes: np.ndarray, K: int) -> float:
    counts = np.bincount(codes, minlength=K).astype(np.float64)
    p = counts[counts > 0] / max(len(codes), 1)
    return float(np.exp(-(p * np.log(p)).sum()))
