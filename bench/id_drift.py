"""Codebook drift (ace_core/ids/stable_ids.py) on corpora that grow as users' do: what the
re-index's refit threshold (MAX_DRIFT) sees. Not a test.

  .venv/bin/python bench/id_drift.py [--n 4000] [--dim 64] [--seeds 3]

A corpus of clustered, normalised embeddings is fitted (K-Means + RQ-VAE, the index's ID
settings at a bench size); then the drift of the frozen codebooks is measured on the corpus
grown by more items of the same clusters, by items of clusters it never had, and on a corpus
replaced by another one. Medians over seeds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.ids.kmeans import KMeansConfig  # noqa: E402
from ace_core.ids.rqvae import RQVAEConfig  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n  # noqa: E402
from ace_core.ids.stable_ids import MAX_DRIFT, codebook_drift  # noqa: E402

SMOKE = ["--n", "200", "--seeds", "1"]


def clusters(rng, n_clusters: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n_clusters, dim)).astype(np.float32)


def draw(rng, centers: np.ndarray, n: int, noise: float = 0.35) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + noise * rng.standard_normal(
        (n, centers.shape[1])
    )
    return l2n(x.astype(np.float32))


def cases(rng, n: int, dim: int):
    old, other = clusters(rng, 24, dim), clusters(rng, 24, dim)
    base = draw(rng, old, n)
    yield "unchanged corpus", base, base
    for share in (0.01, 0.1, 0.5, 1.0):
        grown = np.concatenate([base, draw(rng, old, int(share * n))])
        yield f"+{share:.0%} items, same kinds", grown, base
    for share in (0.01, 0.1, 0.5):
        grown = np.concatenate([base, draw(rng, other, int(share * n))])
        yield f"+{share:.0%} items of unseen kinds", grown, base
    yield "corpus replaced by unseen kinds", draw(rng, other, n), base


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rows: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        for name, x_now, x_fit in cases(rng, args.n, args.dim):
            rq = RQVAEConfig(codebook_size=64, max_epochs=30, seed=seed)
            cfg = SemanticIDConfig(kmeans=KMeansConfig(k=32), rqvae=rq, faiss_reference=False)
            if name == "unchanged corpus":
                ids = [f"{i:x}" for i in range(len(x_fit))]
                indexer, _ = fit_semantic_ids(ids, x_fit, cfg)
            rows.setdefault(name, []).append(codebook_drift(indexer, x_now, x_fit)["drift"])
    print(f"| corpus at the re-index (fit on {args.n} items) | drift (median of {args.seeds}) "
          f"| kept at MAX_DRIFT {MAX_DRIFT} |\n|---|---|---|")  # fmt: skip
    for name, values in rows.items():
        d = statistics.median(values)
        print(f"| {name} | {d:.3f} | {'yes' if d <= MAX_DRIFT else 'no: refit'} |")


if __name__ == "__main__":
    main()
