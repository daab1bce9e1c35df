"""Does ordering results by calibrated relevance (what is served) beat ordering them by raw
score? The version's test queries (the served evaluation's protocol and sample) through each
generative path, both ways, on a store the caller names (``make demo`` builds demo-store with
the tiny aligned encoders: the paths that merge item spaces are the ones where it matters).

    .venv/bin/python bench/relevance_order.py --store demo-store

Removes the store's kept evaluations and calibrations of those paths before and after."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ace_index.query.search as qs  # noqa: E402
from ace_index.query.evaluate import evaluate_served_path  # noqa: E402
from ace_index.storage.store import Store  # noqa: E402

SMOKE = ["--store", "{store}"]


def _by_score(answer, cal, served=qs.with_relevance):
    out = served(answer, cal)
    for row in out.results:
        row.sort(key=lambda r: -r["score"])
    return out


def _scored(store: str, version: str, path: str, order: str) -> dict:
    s = Store(store)
    kept = [s.evaluation_file(version, path), s.evaluation_file(version, f"relevance-{path}")]
    for f in kept:
        f.unlink(missing_ok=True)
    served = qs.with_relevance
    qs.with_relevance = _by_score if order == "score" else served
    try:
        return evaluate_served_path(store, version, path)
    finally:
        qs.with_relevance = served
        for f in kept:
            f.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--paths", nargs="+", default=["both", "zero-shot"])
    args = ap.parse_args()
    print("| version | path | order | test queries | R@1 | R@5 | MRR@10 |")
    print("|---|---|---|---|---|---|---|")
    for v in Store(args.store).versions():
        for path in args.paths:
            for order in ("relevance", "score"):
                out = _scored(args.store, v, path, order)
                m = out["served"]
                print(f"| {v} | {path} | {order} | {out['queries']} | {m['R@1']:.3f} | "
                      f"{m['R@5']:.3f} | {m['MRR@10']:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
