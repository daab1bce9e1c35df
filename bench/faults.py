"""The fault matrix: runs tests/faults (every case of the faults issue that is quick) and the
slow cases here, and prints how many held. Not a test.

  .venv/bin/python bench/faults.py [--captions 10000]

Slow cases: a benchmark-sized caption set (>= 10,000 captions) trains, both with its caption
features cached and with a cache too small for them (recomputed per batch, used in backward).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks import _env  # noqa: E402,F401


def matrix() -> tuple[int, int, float]:
    """(held, total, seconds) of the quick cases in tests/faults."""
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    passed = int((re.search(r"(\d+) passed", out) or [0, 0])[1])
    failed = int((re.search(r"(\d+) failed", out) or [0, 0])[1])
    return passed, passed + failed, time.perf_counter() - t


def many_captions(n_captions: int, cache_mb: int) -> tuple[bool, str]:
    """Train one epoch on at least ``n_captions`` training captions (5 per item; the
    protocol holds one test and one validation caption of each item out)."""
    import numpy as np

    from ace_core.ids.kmeans import KMeansConfig
    from ace_core.ids.rqvae import RQVAEConfig
    from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
    from ace_core.media.captions import CaptionEntry
    from ace_core.retrieval.dense import DenseTrainConfig
    from ace_core.retrieval.fit import fit_retrieval
    from ace_core.retrieval.training import TrainConfig

    per_item = 5
    n_items = -(-n_captions // (per_item - 2))
    rng = np.random.default_rng(0)
    ids = [f"{i:064x}" for i in range(n_items)]
    x = l2n(rng.standard_normal((n_items, 64)).astype(np.float32))
    words = ["red", "blue", "green", "circle", "square", "loud", "soft", "moving", "still"]
    caps = {
        i: CaptionEntry([" ".join(rng.choice(words, 6)) + f" {n} {k}" for k in range(per_item)])
        for n, i in enumerate(ids)
    }
    cfg = SemanticIDConfig(kmeans=KMeansConfig(k=32), rqvae=RQVAEConfig(max_epochs=2))
    indexer, sids = fit_semantic_ids(ids, x, cfg)
    train = TrainConfig(
        epochs=1, eval_every=1, feature_cache_mb=cache_mb, max_val_queries=64,
        dense=DenseTrainConfig(epochs=1),
    )  # fmt: skip
    t = time.perf_counter()
    try:
        fit = fit_retrieval(ids, x, sids, indexer, caps, train=train)
    except Exception as e:  # noqa: BLE001 - a bench row, not a crash
        return False, f"{type(e).__name__}: {str(e)[:120]}"
    q = fit.eval["queries"]
    total = q["train"] + q["val"] + q["test"]
    took = time.perf_counter() - t
    return (
        True,
        f"{total} captions ({q['train']} training), {n_items} items, 1 epoch in {took:.0f} s",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--captions", type=int, default=10_000)
    args = ap.parse_args()
    held, total, secs = matrix()
    rows = [(f"tests/faults ({total} cases)", held == total, f"{held}/{total} held, {secs:.0f} s")]
    for cache_mb, label in ((1024, "cached features"), (16, "features over the cache")):
        ok, note = many_captions(args.captions, cache_mb)
        rows.append((f">= {args.captions} training captions, {label}", ok, note))
        held, total = held + ok, total + 1
    print("| case | held | detail |\n|---|---|---|")
    for name, ok, note in rows:
        print(f"| {name} | {'yes' if ok else 'NO'} | {note} |")
    print(f"\nfault matrix: {held} of {total} cases held")


if __name__ == "__main__":
    main()
