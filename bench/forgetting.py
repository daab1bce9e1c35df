"""Ingest fine-tuning variants on one parent (issue: Prefect flows, forgetting). Not a test.

  .venv/bin/python bench/forgetting.py STORE [--parent v000001] [--ingest v000002]
      [--variant ""] [--variant ingest.replay_ratio=3] [--variant ingest.lr_scale=0.5] ...

STORE holds a parent version and an ingest on top of it (e.g. the store that
bench/orchestration.py leaves under /tmp/ace-bench-flows-*/store). Each variant re-runs only
the ingest's fine-tune (the same items, IDs and captions) with some IndexConfig fields
changed, and prints old-item and new-item test recall and the fine-tune time, one markdown
row per variant. A field is a dotted path into IndexConfig (``ingest.epochs``, ``train.lr``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_index.tasks import _env  # noqa: E402,F401

SMOKE = ["{store}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--parent", default="v000001")
    ap.add_argument("--ingest", default="v000002")
    ap.add_argument("--variant", action="append", default=None, help="field=value[,field=value]")
    args = ap.parse_args()
    from ace_core.retrieval.fit import fit_retrieval
    from ace_core.retrieval.text_encoder import default_encoder_path
    from ace_index.storage.formats.manifest import version_config
    from ace_index.storage.formats.retriever import load_retriever_state
    from ace_index.storage.formats.text_features import feature_source
    from ace_index.storage.formats.version_data import training_data
    from ace_index.storage.store import open_store

    s = open_store(args.store)
    parent, ingest = s.version(args.parent), s.version(args.ingest)
    base, data = version_config(args.store, args.ingest), training_data(ingest)
    encoder = base.retriever.encoder_path or default_encoder_path()
    features = feature_source(s.staging_dir, encoder)  # the store's caption features, as a build
    print("| variant | old R@1 | old R@5 | new R@1 | new R@5 | fine-tune s | best epoch |")
    print("|---|---|---|---|---|---|---|")
    for variant in args.variant or [""]:
        cfg = base
        for field in filter(None, variant.split(",")):
            key, value = field.split("=")
            cfg = replace_path(cfg, key.split("."), value)
        t = time.perf_counter()
        fit = fit_retrieval(
            data.item_ids, data.embeddings, data.sids, data.indexer, data.captions,
            config=cfg.retriever, train=cfg.train, ingest=cfg.ingest,
            init=load_retriever_state(parent.retriever), features=features,
        )  # fmt: skip
        took = time.perf_counter() - t
        old, new = fit.subsets["old_items"], fit.subsets["new_items"]
        print(
            f"| {variant or 'defaults'} | {old['R@1']:.3f} | {old['R@5']:.3f} | {new['R@1']:.3f} "
            f"| {new['R@5']:.3f} | {took:.1f} | {fit.generative_report.best_epoch} |"
        )


def replace_path(cfg, path: list[str], value: str):
    """``cfg`` with the field at the dotted ``path`` set to ``value`` (cast to its type)."""
    head = getattr(cfg, path[0])
    new = replace_path(head, path[1:], value) if path[1:] else type(head)(value)
    return replace(cfg, **{path[0]: new})


if __name__ == "__main__":
    main()
