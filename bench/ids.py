"""Semantic-ID figures (issue: semantic IDs). Prints markdown; not a test.

  .venv/bin/python bench/ids.py [--sizes 10000 100000] [--repeats 3]
      [--rq-max-epochs 50] [--init-points-per-code 8] [--rq-init kmeans]   (RQ-VAE variants)

Per size n (synthetic clustered 512-d, L2-normalised): our coarse K-Means vs bare faiss.Kmeans
on the same data in the same run (median of repeats), RQ-VAE training time and epochs, the
faiss.ResidualQuantizer reference, incremental assignment throughput, and the quality report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.ids.kmeans import KMeansConfig, auto_k, fit_kmeans  # noqa: E402
from ace_core.ids.quality import collision_rate, faiss_rq_reference  # noqa: E402
from ace_core.ids.rqvae import RQVAEConfig  # noqa: E402
from ace_core.ids.semantic_ids import (  # noqa: E402
    SemanticIDConfig,
    fit_semantic_ids,
    l2n,
)
from bench.timing import median_time  # noqa: E402

SMOKE = ["--sizes", "300", "--repeats", "1", "--rq-max-epochs", "2"]


def data(n, d=512, clusters=500, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return l2n(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rq-max-epochs", type=int, default=RQVAEConfig.max_epochs)
    ap.add_argument("--init-points-per-code", type=int, default=RQVAEConfig.init_points_per_code)
    ap.add_argument("--rq-init", default=RQVAEConfig.init, choices=["kmeans", "faiss_rq"])
    args = ap.parse_args()
    rq_cfg = RQVAEConfig(
        max_epochs=args.rq_max_epochs,
        init_points_per_code=args.init_points_per_code,
        init=args.rq_init,
    )
    print(f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}")
    print(
        f"RQ-VAE max_epochs {rq_cfg.max_epochs}, init {rq_cfg.init}, init points per code "
        f"{rq_cfg.init_points_per_code}"
    )
    rows, quality = [], []
    for n in args.sizes:
        x = data(n)
        k = auto_k(n)
        cfg = KMeansConfig(k=k)

        def bare():
            km = faiss.Kmeans(x.shape[1], k, niter=cfg.niter, seed=cfg.seed)
            km.train(x)
            km.index.search(x, 1)  # the assignment our fit also returns

        t_bare, t_ours = [], []
        for _ in range(args.repeats):  # interleaved so both see the same machine noise
            t_bare.append(median_time(bare, 1))
            t_ours.append(median_time(lambda: fit_kmeans(x, cfg), 1))
        t_bare, t_ours = statistics.median(t_bare), statistics.median(t_ours)
        ids = [f"{i:064x}" for i in range(n)]
        hold = n // 10
        t = time.perf_counter()
        indexer, sids = fit_semantic_ids(
            ids[hold:], x[hold:], SemanticIDConfig(kmeans=cfg, rqvae=rq_cfg, faiss_reference=False)
        )
        t_fit = time.perf_counter() - t
        t = time.perf_counter()
        residual = x[hold:][np.argsort(ids[hold:])] - indexer.centroids[sids.coarse]
        ref = faiss_rq_reference(residual, 3, indexer.codebook_size, coarse=sids.coarse)
        t_ref = time.perf_counter() - t
        rs = ref["rows"]  # faiss' subsample: our collisions on the same items
        ours_on_sample = collision_rate(sids.coarse[rs], sids.fine[rs])
        t = time.perf_counter()
        indexer.assign(ids[:hold], x[:hold], sids)
        t_assign = time.perf_counter() - t
        rows.append((n, k, t_bare, t_ours, t_fit, hold / t_assign, t_ref))
        quality.append(
            (
                n,
                {
                    **indexer.report,
                    "faiss_rq_rel_recon_error": round(ref["rel_recon_error"], 5),
                    "sample": len(rs),
                    "ours_on_sample": ours_on_sample,
                    "faiss_rq_collision_rate": ref["collision_rate"],
                    "faiss_rq_perplexity": ref["perplexity"],
                },
            )
        )
    print(
        "\n| n | k | faiss.Kmeans s | ours s | ratio "
        "| ID fit s (k-means + RQ-VAE) | faiss RQ reference s | incremental assign items/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, k, tb, to, tf, ips, tr in rows:
        cells = [n, k, f"{tb:.2f}", f"{to:.2f}", f"{to / tb:.2f}", f"{tf:.1f}", f"{tr:.1f}"]
        print("| " + " | ".join(map(str, cells)) + f" | {ips:,.0f} |")
    if len(rows) > 1:
        n0, f0, n1, f1 = rows[0][0], rows[0][4], rows[-1][0], rows[-1][4]
        print(f"\nID fit cost growth {n0} -> {n1}: x{f1 / f0:.1f} for x{n1 / n0:.0f} items")
    print(
        "\n| n | rel_recon_error | faiss_rq_rel_recon_error | collision_rate | max_suffix "
        "| utilization | perplexity | imbalance |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, r in quality:
        print(
            f"| {n} | {r['rel_recon_error']} | {r['faiss_rq_rel_recon_error']} "
            f"| {r['collision_rate']} | {r['max_suffix']} | {r['utilization']} "
            f"| {r['perplexity']} | {r['kmeans_imbalance']} |"
        )
    print(
        "\n| n | items compared (faiss subsample) | our collision rate | faiss RQ collision rate "
        "| our perplexity | faiss RQ perplexity |"
    )
    print("|---|---|---|---|---|---|")
    for n, r in quality:
        print(
            f"| {n} | {r['sample']} | {r['ours_on_sample']} | {r['faiss_rq_collision_rate']} "
            f"| {r['perplexity']} | {r['faiss_rq_perplexity']} |"
        )


if __name__ == "__main__":
    main()
