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
``--parts``: then each component of the fused path timed alone (``component_table`` on the
inputs the served path builds), paired the same way: what grows with the corpus.
``--probes P ...``: then the fused path's ratio with P IVF probes (set on the indexes already
built): what fewer probes would save (their recall: bench/ivf_codes.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.retrieval import dense_index  # noqa: E402
from ace_core.retrieval.fused_search import component_table  # noqa: E402
from ace_index.query.loaded import NO_FILTERS  # noqa: E402
from ace_index.query.rankers.fused import fused_inputs  # noqa: E402
from ace_index.query.search import search_version  # noqa: E402
from bench.serve import synthetic_version  # noqa: E402

PARTS = ("captions", "dense", "text_tower", "bm25")
WORDS = ["red", "blue", "circle", "square", "loud", "tone", "moving", "bird", "rain", "slow"]

SMOKE = ["--sizes", "100", "--runs", "1"]


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
    ap.add_argument("--parts", action="store_true", help="time each component alone")
    ap.add_argument("--probes", type=int, nargs="*", default=[], help="IVF probes to try")
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
    for p in args.paths:
        print(f"{p}: {ratio(took, args.sizes, p)}")
    if args.parts:
        component_growth(versions, args.runs)
    for probes in args.probes:
        print(f"auto with {probes} IVF probes: {probe_ratio(versions, probes, args.runs)}")


def ratio(took: dict, sizes: list[int], label: str) -> str:
    first, last = sizes[0], sizes[-1]
    ratios = [b / a for a, b in zip(took[(first, label)], took[(last, label)])]
    return (f"{last:,} / {first:,} items = {statistics.median(ratios):.2f}x (median of "
            f"{len(ratios)} paired runs; range {min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip


def interleaved(versions: dict, paths: list[str], runs: int) -> dict[tuple, list[float]]:
    """ms per query of each (size, path) in each run (``paired``)."""

    def call(n, path, texts):
        search_version(versions[n], texts, 10, path=path)

    return paired(list(versions), paths, runs, call)


def paired(sizes: list[int], labels, runs: int, call) -> dict[tuple, list[float]]:
    """ms per query of each (size, label) in each run: ``call(size, label, texts)`` on one
    batch of 32. Every run times each size back to back (in turn, the order rotated), so a
    ratio of sizes compares batches timed moments apart on the same machine, not minutes
    apart."""
    took: dict[tuple, list[float]] = {(n, p): [] for n in sizes for p in labels}
    for r in range(runs):
        texts = batch(32, r + 1)
        for label in labels:
            for n in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
                t = time.perf_counter()
                call(n, label, texts)
                took[(n, label)].append((time.perf_counter() - t) / 32 * 1000)
    return took


def component_growth(versions: dict, runs: int) -> None:
    """Each component of the fused path alone on the inputs the served path builds (the
    caption-side ones include MiniLM, the towers' their text encoders), first and last size."""
    inputs = {n: fused_inputs(vm, None, NO_FILTERS) for n, vm in versions.items()}

    def call(n, part, texts):
        component_table(inputs[n], texts, 10, 10, [part])

    took = paired(list(inputs), PARTS, runs, call)
    first, last = min(inputs), max(inputs)
    for part in PARTS:
        a, b = took[(first, part)], took[(last, part)]
        growth = statistics.median(y - x for x, y in zip(a, b))
        print(f"  {part} alone: {statistics.median(a):.3f} -> {statistics.median(b):.3f} "
              f"ms/query, growth {growth:.3f} ms (median of {runs} paired runs)")  # fmt: skip


def probe_ratio(versions: dict, probes: int, runs: int) -> str:
    """The fused path's size ratio with ``probes`` on every IVF index the versions built."""
    ivfs = [index.index for vm in versions.values()
            for kept in vm.cache.dense_indexes.values() for index in kept.values()
            if isinstance(index, dense_index.Rescored)]  # fmt: skip
    try:
        for ivf in ivfs:
            ivf.nprobe = probes
        return ratio(interleaved(versions, ["auto"], runs), sorted(versions), "auto")
    finally:
        for ivf in ivfs:
            ivf.nprobe = dense_index.IVF_PROBES


if __name__ == "__main__":
    main()
