"""Fitting the retrieval model of a version: split the captions (protocol in evaluation.py),
train the generative retriever and the dense baseline, evaluate both on held-out test queries.
An incremental ingest fine-tunes the parent's model on the new items with a replay of old ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ace_core.errors import AceInputError
from ace_core.ids.semantic_ids import SemanticIndexer
from ace_core.ids.sids import SemanticIDs
from ace_core.retrieval._torch import Stopwatch
from ace_core.retrieval.dense import DenseProgress, dense_planned_steps, train_dense
from ace_core.retrieval.distributed import train_in_workers
from ace_core.retrieval.evaluation import QuerySplit, scored_sample, split_queries
from ace_core.retrieval.fine_tune import (
    IngestConfig,
    InitState,
    grown_vocab,
    load_init,
    replay_sample,
)
from ace_core.retrieval.held_out import test_metrics
from ace_core.retrieval.item_offsets import calibrate_offsets
from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.resume import load_dense, save_dense
from ace_core.retrieval.retrieval_model import (
    RetrievalModel,
    build_vocab,
    new_decoder,
    new_dense,
)
from ace_core.retrieval.text_encoder import (
    build_text_encoder,
    resolved_precision,
    runnable_precision,
)
from ace_core.retrieval.text_features import TextFeatures
from ace_core.retrieval.training import (
    StepProgress,
    TrainConfig,
    TrainReport,
    train_generative,
)
from ace_core.retrieval.validation import Validation, ZeroShotInputs

logger = logging.getLogger(__name__)

FeatureSource = Callable[[list[str], RetrievalModel], TextFeatures]


@dataclass
class FitResult:
    model: RetrievalModel
    split: QuerySplit
    generative_report: TrainReport
    eval: dict  # {"queries": {...}, "generative": M, "dense": M}
    subsets: dict | None = None  # fine-tuning: generative metrics on old vs new items
    seconds: dict = field(default_factory=dict)  # wall seconds per phase of the fit

    def eval_record(self) -> dict:
        """What a version's eval.json holds: test metrics and how training went."""
        r = self.generative_report
        record = {
            **self.eval,
            "training": {
                "epochs": r.epochs,
                "best_epoch": r.best_epoch,
                "seconds": round(r.seconds, 2),
                "seconds_per_epoch": round(r.seconds_per_epoch, 3),
                "peak_memory_mb": round(r.peak_memory_mb, 1),
                "steps": r.steps,
                "budget_steps": r.budget_steps,
                "stopped": r.stopped,
                "uncaptioned_bias": r.uncaptioned_bias,
                "examples_per_second": round(r.examples / max(r.seconds, 1e-9), 1),
                "phase_seconds": self.seconds,
            },
        }
        if self.subsets:
            record["subsets"] = self.subsets
        return record


def fit_retrieval(
    item_ids: Sequence[str],
    item_emb: np.ndarray,
    sids: SemanticIDs,
    indexer: SemanticIndexer,
    captions: Mapping[str, object],
    *,
    config: RetrieverConfig = RetrieverConfig(),
    train: TrainConfig = TrainConfig(),
    device: str | torch.device | None = None,
    encoder=None,
    progress: Callable[[int, dict], None] | None = None,  # (epoch, {loss, val?})
    on_step: StepProgress | None = None,  # (steps, step budget, examples)
    on_dense: DenseProgress | None = None,  # (epoch, steps, steps planned, validation?)
    dense: bool = True,
    init: InitState | None = None,
    ingest: IngestConfig = IngestConfig(),
    features: FeatureSource | None = None,
    zero_shot: ZeroShotInputs | None = None,
    workdir: str | None = None,
    checkpoint: str | None = None,
) -> FitResult:
    """Train the generative retriever (and the dense baseline) for a set of items with IDs.

    With ``init`` (incremental ingest) the parent's weights are fine-tuned (``ingest``) on the
    new items' captions mixed with a replay of old pairs; metrics are also reported on old vs
    new items. ``features(texts, model)``: the text encoder's features of captions (default:
    computed in memory; a build passes its store's feature store, which computes each caption
    once and memory-maps it). ``zero_shot``: the item encoders' text towers, so validation
    scores pure generation as served (both paths merged; without them the captions path).
    ``workdir``: where data-parallel workers' inputs are written (``train.workers`` > 1).
    ``checkpoint``: a folder training saves itself to after every epoch and resumes from.
    """
    if list(item_ids) != sids.item_ids:
        raise AceInputError("items and semantic IDs are not aligned (both must be sorted)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = replace(config, text_precision=_fit_precision(config, init, device))
    train = ingest.fine_tune(train) if init is not None else train
    split = split_queries(item_ids, captions, seed=train.seed)
    new_rows = {n for n, i in enumerate(item_ids) if init is not None and i not in init.item_ids}
    train_split, replay = _training_split(split, new_rows, len(item_ids), train, ingest, init)
    clock = Stopwatch()
    model = _new_model(item_ids, item_emb, sids, indexer, config, encoder, device, init)
    feats, gold = _features(model, train_split, features or _in_memory)
    clock.lap("text_features")
    start_counts = _start_is_a_candidate(init, train_split, new_rows)
    train_args = _train_args(model, feats, gold, train, replay, start_counts)
    train_args["val"] = _validation(model, feats, gold, train_split, zero_shot)
    report = _train(train_args, device, progress, on_step, workdir, checkpoint)
    report.uncaptioned_bias = _calibrate(model, split, feats["val"], gold["val"])
    clock.lap("generative_training")
    if dense and len(gold["train"]):
        _train_dense(model, feats, gold, train, checkpoint, on_dense)
    clock.lap("dense_training")
    ev = test_metrics(model, train_split, feats["test"], gold["test"], dense, new_rows, init)
    clock.lap("test_metrics")
    return FitResult(model, split, report, ev["eval"], ev["subsets"], clock.seconds)


def _validation(model, feats, gold, split: QuerySplit, zero_shot) -> Validation | None:
    if not len(gold["val"]):
        return None
    texts = [t for t, _ in split.val]
    return Validation.of(feats["val"], gold["val"], texts, model, zero_shot)


def _train_dense(model: RetrievalModel, feats, gold, train: TrainConfig, checkpoint, on_dense=None):
    """The dense caption baseline, trained once per ``checkpoint`` folder and resumed there
    per epoch (resume.py); ``on_dense(0, steps resumed, planned, None)`` before it, then after
    each epoch."""
    folder = Path(checkpoint) if checkpoint else None
    if folder and load_dense(folder, model.dense):
        return
    val = (feats["val"], gold["val"]) if len(gold["val"]) else None
    planned = dense_planned_steps(train.dense, len(model.item_emb), len(gold["train"]))
    report = on_dense or (lambda *_: None)
    train_dense(
        model.dense,
        feats["train"],
        gold["train"],
        model.item_emb,
        train.dense,
        seed=train.seed,
        val=val,
        on_epoch=lambda epoch, steps, m: report(epoch, steps, planned, m),
        checkpoint=folder / "dense-run" if folder else None,
    )
    if folder:
        save_dense(folder, model.dense)


def _train_args(model, feats, gold, train, replay, validate_initial: bool) -> dict:
    return {
        "decoder": model.decoder,
        "train_feats": feats["train"],
        "train_items": gold["train"],
        "item_emb": model.item_emb,
        "id_tokens": model.id_tokens,
        "trie": model.trie,
        "cfg": train,
        "val": None,
        "replay": replay,
        "validate_initial": validate_initial,
    }


def _train(args: dict, device, progress, on_step, workdir, checkpoint):
    """train_generative here (resumable from ``checkpoint``), or on ``train.workers``
    data-parallel workers."""
    cfg = args["cfg"]
    if cfg.workers > 1 or cfg.nodes > 1:
        return train_in_workers(args, cfg, progress=progress, on_step=on_step, workdir=workdir)
    folder = Path(checkpoint) if checkpoint else None
    return train_generative(
        **args, device=device, progress=progress, on_step=on_step, checkpoint=folder
    )


def _calibrate(model: RetrievalModel, split: QuerySplit, feats, gold) -> float | None:
    """The captions path's offsets of items without training captions zeroed and their bias
    fit on validation (ace_core.retrieval.item_offsets); None without offsets."""
    if model.decoder.item_offset is None:
        return None
    captioned = np.zeros(len(model.item_ids), bool)
    captioned[[row for _, row in split.train]] = True
    return calibrate_offsets(model.decoder, feats, gold, model.item_emb, captioned)


def _training_split(split, new_rows, n_items, train, ingest, init):
    """(the queries to train, validate and test on, the replay of a fine-tune or None)."""
    replay = None
    if init is not None:
        split, replay = replay_sample(
            split,
            new_rows,
            n_items,
            ingest.replay_ratio,
            train.epochs,
            train.seed,
            ingest.updates,
        )
    if not split.train and not train.index_task:
        raise AceInputError("no training captions and the indexing task is off: nothing to learn")
    split = scored_sample(
        split, train.max_val_queries, train.max_test_queries, train.seed, new_rows
    )
    return split, replay


def _fit_precision(config: RetrieverConfig, init, device) -> str:
    """The text encoder's precision for a fit: ``auto`` is the parent's for a fine-tune (its
    features in the store are read again; float32 where bfloat16 would be emulated), and
    bfloat16 where the device has it natively for a new fit."""
    if init is not None and config.text_precision == "auto":
        return runnable_precision(init.text_precision, device)
    return resolved_precision(config.text_precision, device)


def _new_model(item_ids, item_emb, sids, indexer, config, encoder, device, init):
    """A RetrievalModel with a fresh decoder (ID embeddings from the codebooks), or the
    parent's weights when fine-tuning."""
    enc, tok, _ = encoder or build_text_encoder(config, device)
    if enc.precision != config.text_precision:
        raise ValueError(
            f"the text encoder given computes in {enc.precision}, this fit in "
            f"{config.text_precision}"
        )
    enc.eval().to(device)
    vocab = build_vocab(sids, indexer)
    if init is not None:
        vocab = grown_vocab(vocab, init.vocab)
    decoder = new_decoder(config, vocab, enc, item_emb.shape[1], indexer, len(item_ids))
    model = RetrievalModel(
        config,
        vocab,
        list(item_ids),
        np.asarray(item_emb, np.float32),
        vocab.encode(sids.tokens()),
        enc,
        tok,
        decoder,
        new_dense(config, enc, item_emb.shape[1]),
        device,
    )
    if init is not None:
        load_init(decoder, model.dense, init, list(item_ids))
    return model


def _start_is_a_candidate(init, split: QuerySplit, new_rows: set[int]) -> bool:
    """Fine-tuning: the parent's weights compete with the fine-tuned ones (never publish a
    fine-tune worse than its start) only when validation can see the new items. When every new
    item is caption-less, the validation queries are all old items', the parent's weights
    (which never saw the new items) would win and the new items would be unreachable."""
    return init is not None and any(n in new_rows for _, n in split.val)


def _features(model: RetrievalModel, split: QuerySplit, source: FeatureSource):
    """Encoder features and gold item rows of the train / val / test queries."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    feats = {name: source([t for t, _ in pairs], model) for name, pairs in parts.items()}
    gold = {name: np.asarray([n for _, n in pairs], np.int64) for name, pairs in parts.items()}
    return feats, gold


def _in_memory(texts: list[str], model: RetrievalModel) -> TextFeatures:
    return model.features(texts)
