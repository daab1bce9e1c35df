"""Query cost of each path against corpus size (issue 23 part 3). Not a test.

  .venv/bin/python bench/fused_cost.py [--sizes 1000 100000 1000000] [--runs 5] [--profile]

The synthetic versions of bench/serve.py (random IDs and 512-d embeddings, untrained retriever,
a caption per item, the tiny text towers, fusion weights), searched in-process through the one
search entry (query.search.search_version) in batches of 32 queries (the service's batch),
k 10, beam 10. Every size's version is built first and held; each run then times one batch
of 32 queries on each size in turn, so the ratio of two sizes is the median of ratios of
batches timed moments apart (these machines drift by 10-20% over minutes). Prints ms per
query, the median of ``--runs`` batches after a warm-up, and those ratios.
``--profile``: then the top functions of a cProfile over 5 more batches of each path and size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serve import synthetic_version  # noqa: E402

from query.search import search_version  # noqa: E402

WORDS = ["red", "blue", "circle", "square", "loud", "tone", "moving", "bird", "rain", "slow"]


def batch(n: int, seed: int) -> list[str]:
    return [
        " ".join(WORDS[(seed * 7 + i * 3 + j) % len(WORDS)] for j in range(4)) for i in range(n)
    ]


def profiled(vm, path: str) -> None:
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    for r in range(5):
        search_version(vm, batch(32, r + 100), 10, path=path)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    ap.add_argument("--paths", nargs="+", default=["auto", "generative", "dense"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile 5 more batches")
    args = ap.parse_args()
    versions = {}
    for n in args.sizes:
        t = time.perf_counter()
        versions[n] = synthetic_version(n)
        print(f"{n:,} items: synthetic version in {time.perf_counter() - t:.1f} s", flush=True)
        for path in args.paths:
            search_version(versions[n], batch(32, 0), 10, path=path)  # warm-up (indexes, caches)
    took = interleaved(versions, args.paths, args.runs)
    for (n, path), ms in took.items():
        print(f"  {n:,} items, {path}: {statistics.median(ms):.1f} ms/query", flush=True)
        if args.profile:
            profiled(versions[n], path)
    print("\n| items | " + " | ".join(args.paths) + " |\n|---|" + "---|" * len(args.paths))
    for n in args.sizes:
        cells = (f"{statistics.median(took[(n, p)]):.1f}" for p in args.paths)
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    first, last = args.sizes[0], args.sizes[-1]
    for p in args.paths:
        ratios = [b / a for a, b in zip(took[(first, p)], took[(last, p)])]
        print(
            f"{p}: {last:,} / {first:,} items = {statistics.median(ratios):.2f}x "
            f"(median of {len(ratios)} paired runs; range {min(ratios):.2f}-{max(ratios):.2f})"
        )


def interleaved(versions: dict, paths: list[str], runs: int) -> dict[tuple, list[float]]:
    """ms per query of each (size, path) in each run. Every run times one batch of each
    size back to back (in turn, the order rotated), so a ratio of sizes compares batches
    timed moments apart on the same machine, not minutes apart."""
    took: dict[tuple, list[float]] = {(n, p): [] for n in versions for p in paths}
    sizes = list(versions)
    for r in range(runs):
        texts = batch(32, r + 1)
        for path in paths:
            for n in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
                t = time.perf_counter()
                search_version(versions[n], texts, 10, path=path)
                took[(n, path)].append((time.perf_counter() - t) / 32 * 1000)
    return took


if __name__ == "__main__":
    main()
