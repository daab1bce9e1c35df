"""Training and search for the generative retriever (the dense baseline is in dense.py).

The text encoder is frozen (its layer outputs are computed once per text and cached within a
memory budget); the ID decoder and the dense projection are trained. Loss: cross-entropy on
the ID tokens + R-Drop (symmetric KL between two dropout passes). Checkpoints are chosen on
validation queries only.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ace_core.cpu_share import CoreShare
from ace_core.retrieval._torch import autocast, peak_memory_mb, seeded, steps_left
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense import DenseTrainConfig
from ace_core.retrieval.evaluation import retrieval_metrics
from ace_core.retrieval.generation import generative_search
from ace_core.retrieval.model import BOS, IDDecoder
from ace_core.retrieval.text_features import TextFeatures

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60  # upper bound; early stopping on validation MRR@10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    rdrop_weight: float = 0.5  # weight of the R-Drop KL term (0: one pass, no KL)
    bridge_weight: float = 1.0  # InfoNCE weight of the query -> item-space bridge
    eval_every: int = 2  # validate (beam search on val queries) every N epochs
    index_task: bool = True  # also learn item embedding -> ID (caption-less items)
    max_index_repeats: int = 4  # indexing examples per item per epoch: about as many as
    #                             captions, between 1 and this (this many without captions)
    balance_index_task: bool = True  # more indexing examples for items without captions
    lr_decay: bool = True  # cosine decay of the learning rate over the planned steps (to 5%)
    patience: int = 12  # epochs without validation improvement before stopping
    val_beam_size: int = 5
    max_val_queries: int = 512  # validation queries (a seeded sample when there are more)
    max_test_queries: int = 2000  # test queries scored (a seeded sample when there are more)
    max_steps: int | None = 20_000  # optimisation-step budget (None: no cap): training stops
    #   when it is spent, the last epoch partial; the dense baseline has its own (dense.max_steps)
    dense: DenseTrainConfig = DenseTrainConfig()  # the dense baseline's own training
    feature_cache_mb: int | None = None  # cache encoder layer outputs up to this size
    #   (None: a quarter of the machine's memory; 0: no cache, recompute every batch)
    seed: int = 0


@dataclass
class TrainReport:
    epochs: int
    best_epoch: int
    best_val: dict | None
    seconds: float
    seconds_per_epoch: float
    peak_memory_mb: float
    steps: int = 0  # optimisation steps taken
    examples: int = 0  # training examples seen (captions and indexing-task items)
    history: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------- generative


def id_loss(decoder: IDDecoder, memory, pad, targets, rdrop_weight: float) -> torch.Tensor:
    """CE on the ID tokens (+ R-Drop KL between two dropout passes)."""
    bos = torch.full((targets.shape[0], 1), BOS, dtype=torch.long, device=targets.device)
    inp = torch.cat([bos, targets[:, :-1]], dim=1)
    prepared = decoder.prepare(memory, pad)  # memory keys and values, shared by both passes
    logits = decoder.decode(prepared, inp)
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
    if rdrop_weight <= 0:
        return ce
    logits2 = decoder.decode(prepared, inp)
    ce2 = F.cross_entropy(logits2.flatten(0, 1).float(), targets.flatten())
    lp, lq = F.log_softmax(logits.float(), -1), F.log_softmax(logits2.float(), -1)
    kl = (
        0.5
        * (
            F.kl_div(lp, lq, log_target=True, reduction="batchmean")
            + F.kl_div(lq, lp, log_target=True, reduction="batchmean")
        )
        / targets.shape[1]
    )
    return 0.5 * (ce + ce2) + rdrop_weight * kl


@dataclass(frozen=True)
class Replay:
    """Incremental fine-tuning: every epoch trains on all ``new_*`` entries plus a fresh
    seeded draw of ``per_epoch_*`` entries from the ``old_*`` pools (rehearsal), so that old
    items are revisited across epochs at the cost of one small draw per epoch.
    Captions are indices into the training features; rows are item rows."""

    new_caps: np.ndarray
    old_caps: np.ndarray
    per_epoch_caps: int
    new_rows: np.ndarray
    old_rows: np.ndarray
    per_epoch_rows: int

    def draw(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        def pick(new, old, k):
            old = torch.from_numpy(np.asarray(old, np.int64))
            old = old[torch.randperm(len(old), generator=gen)[: min(k, len(old))]]
            return torch.cat([torch.from_numpy(np.asarray(new, np.int64)), old])

        return (
            pick(self.new_caps, self.old_caps, self.per_epoch_caps),
            pick(self.new_rows, self.old_rows, self.per_epoch_rows),
        )


def _batches(caps: torch.Tensor, index_rows: torch.Tensor, cap_items: torch.Tensor,
             cfg: TrainConfig, gen: torch.Generator):  # fmt: skip
    """Shuffled mix of caption batches (indices into the training captions) and indexing-task
    batches (item rows)."""
    n_caps = len(caps)
    perm = torch.randperm(n_caps, generator=gen)
    out = [("cap", caps[b]) for b in perm.split(cfg.batch_size) if len(b)]
    if cfg.index_task and len(index_rows):
        per_item = max(1, -(-n_caps // len(index_rows)))  # about as many as captions
        reps = min(cfg.max_index_repeats, per_item) if n_caps else cfg.max_index_repeats
        extra = _balancing_rows(caps, index_rows, cap_items, cfg)
        rows = torch.cat([index_rows.repeat(reps), extra])
        perm = rows[torch.randperm(len(rows), generator=gen)]
        out += [("item", b) for b in perm.split(cfg.batch_size)]
    order = torch.randperm(len(out), generator=gen).tolist()
    return [out[i] for i in order]


def _balancing_rows(caps, index_rows, cap_items, cfg: TrainConfig) -> torch.Tensor:
    """Extra indexing examples for items without training captions, as many as a captioned
    item has captions, so the decoder holds no prior for captioned items' IDs that the
    zero-shot path would inherit (BENCHMARKS: "Every ID a target as often")."""
    if not cfg.balance_index_task or not len(caps):
        return index_rows[:0]
    bare = index_rows[~torch.isin(index_rows, cap_items)]
    per_captioned = round(len(caps) / len(cap_items.unique()))
    return bare.repeat(per_captioned) if len(bare) and per_captioned else index_rows[:0]


def _train_epoch(decoder, opt, batches, train_feats, cap_items, emb, targets, cfg, device,
                 sched=None):  # fmt: skip
    """One pass over the mixed caption / indexing batches; returns (mean loss, examples)."""
    decoder.train()
    total, count = 0.0, 0
    for kind, b in batches:
        with autocast(device):
            q = None
            if kind == "cap":
                memory, pad, q = decoder.memory_from_text(*train_feats.layers(b))
                items = cap_items[b].to(device)
            else:
                items = b.to(device)
                memory, pad = decoder.memory_from_items(emb[items]), None
            loss = id_loss(decoder, memory, pad, targets[items], cfg.rdrop_weight)
            if q is not None and cfg.bridge_weight > 0:  # bridge InfoNCE against all items
                loss = loss + cfg.bridge_weight * F.cross_entropy((q @ emb.T).float() / 0.05, items)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        total, count = total + loss.item() * len(b), count + len(b)
    return total / max(count, 1), count


class _BestCheckpoint:
    """Keeps the decoder state with the best validation (MRR@10, R@1, -loss); without
    validation queries, the lowest training loss."""

    def __init__(self, decoder, val, trie, cfg: TrainConfig, device):
        self.decoder, self.val, self.trie, self.cfg, self.device = decoder, val, trie, cfg, device
        self.has_val = val is not None and len(val[0]) > 0
        self.key, self.state, self.epoch, self.metrics = None, None, 0, None

    def consider(self, epoch: int, row: dict, final: bool = False) -> None:
        cfg = self.cfg
        last = final or epoch == cfg.epochs
        if self.has_val and (epoch == 0 or epoch % cfg.eval_every == 0 or last):
            row["val"] = evaluate_generative(
                self.decoder, *self.val, self.trie, cfg.val_beam_size, cfg.max_val_queries,
                self.device,
            )  # fmt: skip
            key = (row["val"]["MRR@10"], row["val"]["R@1"], -row.get("loss", 0.0))
        else:
            key = None if self.has_val else (-row["loss"],)
        if key is not None and (self.key is None or key > self.key):
            self.key, self.epoch, self.metrics = key, epoch, row.get("val")
            self.state = copy.deepcopy(self.decoder.state_dict())

    def stale(self, epoch: int) -> bool:
        return self.key is not None and epoch - self.epoch >= self.cfg.patience


def _on_device(item_emb, id_tokens, train_items, device):
    """(item embeddings, ID tokens) on the device; the captions' item rows stay on the CPU."""
    emb = torch.from_numpy(np.asarray(item_emb, np.float32)).to(device)
    targets = torch.from_numpy(np.asarray(id_tokens, np.int64)).to(device)
    return emb, targets, torch.from_numpy(np.asarray(train_items, np.int64))


def _cosine(opt, cfg: TrainConfig, first_epoch_steps: int):
    """Cosine decay to 5% over the steps the budget plans (epochs x the first epoch's
    batches, capped by ``max_steps``)."""
    planned = cfg.epochs * max(first_epoch_steps, 1)
    planned = min(planned, cfg.max_steps) if cfg.max_steps else planned
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(step / planned, 1.0)))
    )


def _optimizer(decoder: IDDecoder, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused: one kernel for all parameters (CPU: 7.4 -> 2.4 ms a step)."""
    params = decoder.parameters()
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def train_generative(
    decoder: IDDecoder,
    train_feats: TextFeatures,
    train_items: np.ndarray,
    item_emb: np.ndarray,
    id_tokens: np.ndarray,
    trie: Trie,
    cfg: TrainConfig,
    *,
    val: tuple[TextFeatures, np.ndarray] | None = None,
    device="cpu",
    progress: Callable[[int, dict], None] | None = None,  # (epoch, {loss, val?})
    replay: Replay | None = None,
    validate_initial: bool = False,
) -> TrainReport:
    """Train ``decoder`` in place; keeps the state with the best validation MRR@10.

    ``replay`` (fine-tuning): which captions and indexing-task items each epoch trains on
    (default: all of them, every epoch). ``validate_initial``: the starting weights are a
    candidate too, as epoch 0."""
    device = torch.device(device)
    decoder.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    emb, targets, cap_items = _on_device(item_emb, id_tokens, train_items, device)
    all_caps, all_rows = torch.arange(len(cap_items)), torch.arange(len(emb))
    opt = _optimizer(decoder, cfg)
    sched = None
    best = _BestCheckpoint(decoder, val, trie, cfg, device)
    started, history, epoch, steps, examples = time.perf_counter(), [], 0, 0, 0
    share, threads = (CoreShare() if device.type == "cpu" else None), torch.get_num_threads()
    if share:
        share.settle()
    with seeded(cfg.seed, device):
        if validate_initial and best.has_val:
            best.consider(0, {"epoch": 0})
        for epoch in range(1, cfg.epochs + 1):
            if share and epoch > 1:
                share.update()  # the cores other processes left free over the last epoch
            caps, rows = replay.draw(gen) if replay is not None else (all_caps, all_rows)
            batches = _batches(caps, rows, cap_items, cfg, gen)[: steps_left(cfg.max_steps, steps)]
            if sched is None and cfg.lr_decay:
                sched = _cosine(opt, cfg, len(batches))
            loss, seen = _train_epoch(decoder, opt, batches, train_feats, cap_items, emb,
                                      targets, cfg, device, sched)  # fmt: skip
            steps, examples = steps + len(batches), examples + seen
            history.append({"epoch": epoch, "loss": loss})
            spent = steps_left(cfg.max_steps, steps) == 0
            best.consider(epoch, history[-1], final=spent)
            if progress:
                progress(epoch, history[-1])
            if spent or best.stale(epoch):
                break
    torch.set_num_threads(threads)  # the pool as it was before training
    decoder.load_state_dict(best.state)
    decoder.eval()
    seconds = time.perf_counter() - started
    return TrainReport(
        epoch, best.epoch, best.metrics, seconds, seconds / max(epoch, 1),
        peak_memory_mb(device), steps, examples, history,
    )  # fmt: skip


def evaluate_generative(
    decoder, feats: TextFeatures, gold: np.ndarray, trie: Trie, beam: int, limit: int, device
) -> dict:
    idx = np.arange(min(len(feats), limit))
    ranked = generative_search(decoder, feats, trie, beam, 10, device=device, rows=idx)
    return retrieval_metrics([[i for i, _ in r] for r in ranked], list(gold[idx]))
