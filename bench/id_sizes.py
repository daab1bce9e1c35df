"""Semantic IDs over corpus sizes (issue 8, part 6): RQ-VAE vs faiss RQ, dead levels. Not a test.

  .venv/bin/python bench/id_sizes.py [--sizes 50 88 300 1000 10000 100000] [--dim 256]

Vectors: a seeded mixture on the unit sphere shaped like the tiny encoders' item embeddings
(40 topics, each a mean direction plus within-topic spread, 256-d), and, when a published
demo store exists (`make demo`), its real item embeddings. For each size: the codebook size
chosen, the RQ-VAE's relative reconstruction error of the residuals against a same-budget
faiss.ResidualQuantizer fitted on the same residuals, per-level perplexity and utilisation,
and whether any level is dead (perplexity < 1.5: one code carries nearly every item).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402

SMOKE = ["--sizes", "50", "--dim", "16"]


def mixture(n: int, dim: int, seed: int = 0, topics: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topic = rng.integers(topics, size=n)
    x = centres[topic] + 0.35 * rng.normal(size=(n, dim)) / np.sqrt(dim) * 4
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def demo_embeddings() -> np.ndarray | None:
    store = ROOT / "demo-store"
    if not (store / "LATEST").exists():
        return None
    from ace_index.storage.formats.version_data import version_embeddings
    from ace_index.storage.store import Store

    s = Store(str(store))
    return version_embeddings(s.version(s.latest()))[2]


def row(label: str, x: np.ndarray) -> str:
    ids = [f"{i:064x}" for i in range(len(x))]
    t0 = time.perf_counter()
    indexer, _ = fit_semantic_ids(ids, x, SemanticIDConfig())
    r = indexer.report
    ratio = r["rel_recon_error"] / max(r["faiss_rq_rel_recon_error"], 1e-12)
    dead = any(p < 1.5 for p in r["perplexity"])
    return (
        f"| {label} | {len(x)} | {r['k']} | {r['codebook_size']} | {r['rel_recon_error']:.4f} | "
        f"{r['faiss_rq_rel_recon_error']:.4f} | {ratio:.2f} | "
        f"{', '.join(f'{p:.1f}' for p in r['perplexity'])} | "
        f"{', '.join(f'{u:.2f}' for u in r['utilization'])} | {'yes' if dead else 'no'} | "
        f"{r['collision_rate']:.3f} | {time.perf_counter() - t0:.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 88, 300, 1000, 10000, 100000])
    ap.add_argument("--dim", type=int, default=256)
    args = ap.parse_args()
    print(
        "| vectors | items | k | codes/level | RQ-VAE rel. error | faiss RQ rel. error | ratio "
        "| perplexity per level | utilisation per level | dead level | collision rate | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    demo = demo_embeddings()
    if demo is not None:
        print(row("demo store (tiny encoders)", demo), flush=True)
    for n in args.sizes:
        print(row("topic mixture", mixture(n, args.dim, seed=n)), flush=True)


if __name__ == "__main__":
    main()
