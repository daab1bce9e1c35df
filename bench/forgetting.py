"""Ingest fine-tuning variants on one parent (issue: Prefect flows, forgetting). Not a test.

  .venv/bin/python bench/forgetting.py STORE [--parent v000001] [--ingest v000002]
      [--variant ""] [--variant replay_ratio=3] [--variant ingest_lr_scale=0.5] ...

STORE holds a parent version and an ingest on top of it (e.g. the store bench/flows.py leaves
under /tmp/ace-bench-flows-*/store). Each variant re-runs only the ingest's fine-tune (the same
items, IDs and captions) with some IndexConfig fields changed, and prints old-item and new-item
test recall and the fine-tune time, one markdown row per variant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import _env  # noqa: E402,F401


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--parent", default="v000001")
    ap.add_argument("--ingest", default="v000002")
    ap.add_argument("--variant", action="append", default=None, help="field=value[,field=value]")
    args = ap.parse_args()
    from storage.store import Store
    from tasks.steps import _fit, index_config

    s = Store(args.store)
    parent, ingest = s.version_dir(args.parent), s.version_dir(args.ingest)
    base = index_config(json.loads((ingest / "manifest.json").read_text())["config"])
    print("| variant | old R@1 | old R@5 | new R@1 | new R@5 | fine-tune s | best epoch |")
    print("|---|---|---|---|---|---|---|")
    for variant in args.variant or [""]:
        cfg = base
        for field in filter(None, variant.split(",")):
            key, value = field.split("=")
            cfg = replace(cfg, **{key: type(getattr(cfg, key))(value)})
        t = time.perf_counter()
        fit = _fit(ingest, cfg, init_from=str(parent / "retriever"))
        took = time.perf_counter() - t
        old, new = fit.subsets["old_items"], fit.subsets["new_items"]
        print(
            f"| {variant or 'defaults'} | {old['R@1']:.3f} | {old['R@5']:.3f} | {new['R@1']:.3f} "
            f"| {new['R@5']:.3f} | {took:.1f} | {fit.generative_report.best_epoch} |"
        )


if __name__ == "__main__":
    main()
