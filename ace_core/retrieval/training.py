"""Training the generative retriever under a budget (the dense baseline is in dense.py).

The text encoder is frozen (its features are computed once per caption: text_features.py); the
ID decoder is trained (train_steps.py: the steps, their loss and optimisers). The budget is set
in training examples per item (captions and indexing-task items), so a corpus of any size gets
the exposure the measured curves call for (docs/BENCHMARKS.md); validation (validation.py:
pure generation as served) picks the checkpoint, and training stops early once it has
flattened: ``patience`` validations in a row without a gain of ``min_gain`` in MRR@10.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ace_core.cpu_share import CoreShare
from ace_core.retrieval._torch import peak_memory_mb, seeded
from ace_core.retrieval.batches import Replay, epoch_batches
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.dense import DenseTrainConfig
from ace_core.retrieval.model import IDDecoder
from ace_core.retrieval.parallel import data_parallel, shard, world
from ace_core.retrieval.resume import load_checkpoint, save_checkpoint
from ace_core.retrieval.text_features import TextFeatures
from ace_core.retrieval.train_steps import Optimizer, StepTargets, step_loss, train_epoch
from ace_core.retrieval.validation import Validation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60  # upper bound on passes over the training examples
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    rdrop_weight: float = 0.0  # weight of the R-Drop KL term (0: one pass, no KL; ACE used 0.5:
    #   at 1k items it gave +0.008 R@1 for 1.5x the step, docs/BENCHMARKS.md)
    bridge_weight: float = 1.0  # InfoNCE weight of the query -> item-space bridge
    bridge_negatives: int | None = 8192  # above this many items the bridge's InfoNCE samples
    #                                      this many negatives (None: always every item)
    examples_per_item: float | None = 40.0  # the step budget in training examples per item
    #   (captions and indexing-task items), from the measured curves (docs/BENCHMARKS.md,
    #   "A budget from the curve"); None: ``max_steps`` (or the epochs) alone
    max_steps: int | None = None  # a cap on optimisation steps (None: the budget alone)
    eval_every: int = 1  # validate (beam search on val queries) every N epochs
    patience: int = 3  # validations in a row without a gain of min_gain: the curve is flat
    min_gain: float = 0.005  # the validation MRR@10 gain that counts as still learning
    index_task: bool = True  # also learn item embedding -> ID (caption-less items)
    max_index_repeats: int = 4  # indexing examples per item per epoch: about as many as
    #                             captions, between 1 and this (this many without captions)
    balance_index_task: bool = True  # more indexing examples for items without captions
    lr_decay: bool = True  # cosine decay of the learning rate over the budget (to 5%)
    val_beam_size: int = 5
    max_val_queries: int = 512  # validation queries (a seeded sample when there are more)
    max_test_queries: int = 2000  # test queries scored (a seeded sample when there are more)
    dense: DenseTrainConfig = DenseTrainConfig()  # the dense baseline's own training
    workers: int = 1  # data-parallel training processes on this machine (distributed.py)
    nodes: int = 1  # machines that train together (each runs ``workers``)
    rendezvous: str = ""  # HOST:PORT every machine reaches (nodes > 1; "": this machine)
    seed: int = 0


# What every version trained before issue 40 had (their saved configs lack these keys).
TRAIN_BEFORE_BUDGET = {"examples_per_item": None, "min_gain": 0.0}


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
    budget_steps: int = 0  # the steps the budget allowed
    stopped: str = "budget"  # budget | flattened | epochs
    uncaptioned_bias: float | None = None  # the captions path's (item_offsets.py), once fit


def step_budget(cfg: TrainConfig, n_items: int, epoch_steps: int, workers: int = 1) -> int:
    """The steps a fit may take: ``examples_per_item`` x items / (batch x workers: a step of
    N data-parallel workers takes N batches), capped by ``max_steps`` and by ``epochs`` x
    the first epoch's steps."""
    steps = cfg.epochs * max(epoch_steps, 1)
    if cfg.examples_per_item is not None:
        per_step = cfg.batch_size * workers
        steps = min(steps, math.ceil(cfg.examples_per_item * n_items / per_step))
    return max(1, min(steps, cfg.max_steps) if cfg.max_steps else steps)


class _BestCheckpoint:
    """Keeps the decoder state with the best validation (MRR@10, R@1, -loss); without
    validation queries, the lowest training loss. Counts the validations since the last gain
    of ``min_gain`` (the curve has flattened after ``patience`` of them)."""

    def __init__(self, decoder, val: Validation | None, trie, cfg: TrainConfig, device):
        self.decoder, self.val, self.trie, self.cfg, self.device = decoder, val, trie, cfg, device
        self.has_val = val is not None and len(val) > 0
        self.key, self.state, self.epoch, self.metrics = None, None, 0, None
        self.gained_at, self.since_gain = None, 0

    def consider(self, epoch: int, row: dict, final: bool = False) -> None:
        cfg = self.cfg
        last = final or epoch == cfg.epochs
        if self.has_val and (epoch == 0 or epoch % cfg.eval_every == 0 or last):
            row["val"] = self.val.evaluate(
                self.decoder, self.trie, cfg.val_beam_size, cfg.max_val_queries, self.device
            )
            key = (row["val"]["MRR@10"], row["val"]["R@1"], -row.get("loss", 0.0))
            self._count_gain(row["val"]["MRR@10"])
        else:
            key = None if self.has_val else (-row["loss"],)
        if key is not None and (self.key is None or key > self.key):
            self.key, self.epoch, self.metrics = key, epoch, row.get("val")
            self.state = copy.deepcopy(self.decoder.state_dict())

    def _count_gain(self, mrr: float) -> None:
        if self.gained_at is None or mrr >= self.gained_at + self.cfg.min_gain:
            self.gained_at, self.since_gain = mrr, 0
        else:
            self.since_gain += 1

    def flattened(self) -> bool:
        return self.has_val and self.since_gain >= self.cfg.patience


StepProgress = Callable[[int, int, int], None]  # (steps done, step budget, examples seen)


def train_generative(
    decoder: IDDecoder,
    train_feats: TextFeatures,
    train_items: np.ndarray,
    item_emb: np.ndarray,
    id_tokens: np.ndarray,
    trie: Trie,
    cfg: TrainConfig,
    *,
    val: Validation | None = None,
    device="cpu",
    progress: Callable[[int, dict], None] | None = None,  # (epoch, {loss, val?})
    on_step: StepProgress | None = None,
    replay: Replay | None = None,
    validate_initial: bool = False,
    checkpoint: Path | None = None,
) -> TrainReport:
    """Train ``decoder`` in place under the step budget; keeps the state with the best
    validation MRR@10.

    ``replay`` (fine-tuning): which captions and indexing-task items each epoch trains on
    (default: all of them, every epoch). ``validate_initial``: the starting weights are a
    candidate too, as epoch 0. ``checkpoint``: a folder the run is saved to after every epoch
    and resumed from when it holds one (resume.py; one worker)."""
    device = torch.device(device)
    decoder.to(device)
    targets = StepTargets.of(decoder, item_emb, id_tokens, train_items, trie, device)
    run = _Run(decoder, train_feats, targets, cfg, device, replay)
    best = _BestCheckpoint(decoder, val, trie, cfg, device)
    share, threads = (CoreShare() if device.type == "cpu" else None), torch.get_num_threads()
    if share:
        share.settle()
    with seeded(cfg.seed, device):
        done = load_checkpoint(checkpoint, run, best) if checkpoint else 0
        if validate_initial and best.has_val and not done:
            best.consider(0, {"epoch": 0})
        for epoch in range(done + 1, cfg.epochs + 1):
            if run.stopped != "epochs":
                break  # resumed from the checkpoint of a run that had finished
            if share and epoch > 1:
                share.update()  # the cores other processes left free over the last epoch
            row = run.epoch(replay, on_step)
            best.consider(epoch, row, final=run.spent)
            if run.spent or best.flattened():
                run.stopped = "budget" if run.spent else "flattened"
            last = run.stopped != "epochs" or epoch == cfg.epochs  # the last row says why
            if progress:
                progress(epoch, {**row, "stopped": run.stopped} if last else row)
            if checkpoint:  # the last epoch too: a kill after training keeps the training
                save_checkpoint(checkpoint, run, best)
            if run.stopped != "epochs":
                break
    torch.set_num_threads(threads)  # the pool as it was before training
    decoder.load_state_dict(best.state)
    decoder.eval()
    return run.report(best, peak_memory_mb(device))


class _Run:
    """One training run's state: the optimiser, the budget and the counts so far."""

    def __init__(self, decoder, train_feats, t: StepTargets, cfg: TrainConfig, device, replay=None):
        self.decoder, self.train_feats, self.t = decoder, train_feats, t
        self.cfg, self.device = cfg, device
        self.opt = Optimizer(decoder, cfg, replay)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.loss = data_parallel(
            decoder, lambda dec, kind, b: step_loss(dec, kind, b, train_feats, t, cfg, device)
        )
        self.started, self.history = time.perf_counter(), []
        self.steps, self.examples, self.budget, self.stopped = 0, 0, None, "epochs"

    @property
    def spent(self) -> bool:
        return self.budget is not None and self.steps >= self.budget

    def epoch(self, replay: Replay | None, on_step: StepProgress | None) -> dict:
        t = self.t
        if replay is not None:
            caps, rows = replay.draw(self.gen)
        else:
            caps, rows = torch.arange(len(t.cap_items)), torch.arange(len(t.emb))
        rank, size = world()
        batches = shard(epoch_batches(caps, rows, t.cap_items, self.cfg, self.gen), rank, size)
        if self.budget is None:
            self.budget = step_budget(self.cfg, len(t.emb), len(batches), size)
            self.opt.plan(self.budget)
        batches = batches[: self.budget - self.steps]
        steps, examples = self.steps, self.examples

        def stepped(n: int, seen: int) -> None:
            if on_step:
                on_step(steps + n, self.budget, examples + seen)

        loss, seen = train_epoch(self.loss, self.decoder, self.opt, batches, stepped)
        seen *= size  # every worker took as many examples
        self.steps, self.examples = steps + len(batches), examples + seen
        row = {"epoch": len(self.history) + 1, "loss": loss, "steps": self.steps}
        self.history.append({**row, "examples": self.examples})
        return self.history[-1]

    def report(self, best: _BestCheckpoint, peak_mb: float) -> TrainReport:
        seconds = time.perf_counter() - self.started
        epochs = len(self.history)
        per_epoch = seconds / max(epochs, 1)
        return TrainReport(
            epochs,
            best.epoch,
            best.metrics,
            seconds,
            per_epoch,
            peak_mb,
            self.steps,
            self.examples,
            self.history,
            self.budget or 0,
            self.stopped,
        )
