"""The Prefect task that trains (or fine-tunes) a staged version's retriever and evaluates it:
caption features from the store's feature store, progress an operator reads, a checkpoint a
killed build's next run resumes, the fusion weights and the eval record."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
from prefect import task

from ace_core.config_io import config_hash
from ace_core.index_config import IndexConfig
from ace_core.retrieval.ablations import run_ablations
from ace_core.retrieval.fit import fit_retrieval
from ace_core.retrieval.text_encoder import default_encoder_path
from ace_index.storage.formats.retriever import load_retriever_state, save_retriever
from ace_index.storage.formats.text_features import feature_source
from ace_index.storage.formats.version_data import training_data
from ace_index.storage.store import open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.tasks._progress import (
    dense_progress,
    run_logger,
    stage,
    text_progress,
    training_progress,
)
from ace_index.tasks.fusion_fit import VersionItems, fit_fusion_weights
from ace_index.tasks.validation_check import warn_if_no_validation


@task(name="train-retriever")
def train_retriever(
    store: str, staged: str, config: IndexConfig, init_from: str | None = None
) -> dict:
    """Train (or fine-tune from ``init_from``, a retriever folder) and evaluate; writes
    retriever/ and eval.json; returns the eval record."""
    v, data = VersionLayout(staged), training_data(VersionLayout(staged))
    init = load_retriever_state(init_from) if init_from else None
    items = VersionItems.read(store, v, config, data.item_ids)
    key = f"ace-{open_store(store).key}"
    encoder_path = config.retriever.encoder_path or default_encoder_path()
    n = len(data.item_ids)
    checkpoint = open_store(store).staging_dir / "training" / training_key(data, config, init_from)
    warn_if_no_validation(data.item_ids, data.captions, config.train.seed)
    with (
        text_progress(f"{key}-features") as on_texts,
        training_progress(key, n) as progress,
        dense_progress(key) as on_dense,
    ):
        fit = fit_retrieval(
            data.item_ids,
            data.embeddings,
            data.sids,
            data.indexer,
            data.captions,
            config=config.retriever,
            train=config.train,
            ingest=config.ingest,
            init=init,
            progress=progress.epoch,
            on_step=progress.step,
            on_dense=on_dense,
            features=feature_source(open_store(store).staging_dir, encoder_path, on_texts),
            zero_shot=items.zero_shot,
            workdir=str(open_store(store).staging_dir),
            checkpoint=str(checkpoint),
        )
    shutil.rmtree(checkpoint, ignore_errors=True)  # trained: a later build starts afresh
    _training_ended(fit.generative_report)
    save_retriever(fit.model, v.retriever, encoder_path)
    record = fit.eval_record()
    record["fusion"] = fit_fusion_weights(items, config, fit, bool(data.captions))
    if config.ablations:
        record["ablations"] = run_ablations(data, config)
    v.eval.write_text(json.dumps(record, indent=2))
    _warn_if_no_training_captions(record, data.captions)
    g = record.get("generative") or {}
    stage(
        "retriever trained: test R@1 %s, R@10 %s (%d test queries)",
        g.get("R@1"),
        g.get("R@10"),
        record["queries"]["test"],
    )
    return record


def training_key(data, config: IndexConfig, init_from: str | None) -> str:
    """What a fit's training depends on (items, IDs, captions, settings, the parent it
    fine-tunes): a killed build's next run with the same inputs resumes its checkpoint."""
    h = hashlib.sha256()
    settings = [config_hash(c) for c in (config.train, config.retriever, config.ingest)]
    h.update(json.dumps([data.item_ids, init_from, settings]).encode())
    h.update(np.ascontiguousarray(data.sids.tokens()).tobytes())
    for item_id in sorted(data.captions):
        h.update(json.dumps([item_id, list(data.captions[item_id].captions)]).encode())
    return h.hexdigest()[:24]


_ENDED_BECAUSE = {
    "budget": "its budget is spent",
    "flattened": "validation flattened",
    "epochs": "its epochs are done",
}


def _training_ended(r) -> None:
    stage(
        "training ended at step %d of %d: %s (kept: epoch %d of %d)",
        r.steps,
        r.budget_steps,
        _ENDED_BECAUSE[r.stopped],
        r.best_epoch,
        r.epochs,
    )


def _warn_if_no_training_captions(record: dict, captions: dict) -> None:
    """One line when captioned items exist but none trains (every caption held out by the
    splits of captions.jsonl), naming the splits that hold them."""
    if record["queries"]["train"] or not captions:
        return
    splits: dict[str, int] = {}
    for entry in captions.values():
        splits[entry.split or "none"] = splits.get(entry.split or "none", 0) + 1
    held = ", ".join(f"{n} items in {s}" for s, n in sorted(splits.items()))
    run_logger().warning(
        "no caption trains this index (%s): the captions path learns nothing; give the "
        "training files =train (ace import-captions FILE=train)",
        held,
    )
