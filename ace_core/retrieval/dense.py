"""The dense baseline: the same frozen text encoder + a linear projection into the item
space (InfoNCE), searched with a faiss flat inner-product index."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import LambdaLR

from ace_core.retrieval._torch import cosine_factor, seeded, steps_left
from ace_core.retrieval.dense_index import flat_index, searched
from ace_core.retrieval.evaluation import retrieval_metrics, validation_order
from ace_core.retrieval.losses import info_nce
from ace_core.retrieval.resume import load_dense_run, save_dense_run
from ace_core.retrieval.text_encoder import resolved_precision
from ace_core.retrieval.text_features import TextFeatures


@dataclass(frozen=True)
class DenseTrainConfig:
    epochs: int = 150  # upper bound; early stopping on validation MRR@10
    lr: float = 3e-3
    batch_size: int = 128
    weight_decay: float = 0.01
    patience: int = 36  # epochs without validation improvement before stopping
    max_steps: int | None = None  # a cap on optimisation steps (None: the budget alone)
    examples_per_item: float | None = 160.0  # the budget in training examples per item, as
    #   TrainConfig's: the baseline's cost grows with the corpus as the generative path's does
    #   (at 10k items 12,500 steps; with the decay, as good as 20,000 constant-rate steps)
    lr_decay: bool = True  # cosine decay of the learning rate over the budget (to 5%)
    min_steps: int = 5_000  # at least this many steps (within ``epochs``): below about 4,000
    #   items the examples-per-item budget alone trained it less than before issue 40 (1k:
    #   1,250 steps, test R@1 0.499 against 0.538; 5,000 steps 0.536, 16 s)
    negatives: int | None = 8192  # above this many items, InfoNCE samples this many negatives
    #                               (a step's cost stops growing with the corpus; None: all)
    precision: str = "auto"  # the logits' product: float32, bfloat16, or auto (bfloat16 where
    #   the device has it natively and the budget sets the steps: dense_precision); the
    #   softmax, weights and search stay float32


# what a version built before the dense budget (issue 40) trained its baseline with
DENSE_BEFORE_BUDGET = {
    "max_steps": 20_000,
    "examples_per_item": None,
    "lr_decay": False,
    "precision": "float32",
}


class DenseProjection(nn.Module):
    """Text (pooled encoder output) -> candidate embedding space, trained with InfoNCE."""

    def __init__(self, text_dim: int, item_dim: int):
        super().__init__()
        self.proj = nn.Linear(text_dim, item_dim)
        self.log_temp = nn.Parameter(torch.tensor(float(np.log(0.05))))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(pooled), dim=-1)


DenseProgress = Callable[[int, int, int, dict | None], None]  # (epoch, steps, planned, val?)


def train_dense(
    proj: DenseProjection,
    feats: TextFeatures,
    items: np.ndarray,
    item_emb: np.ndarray,
    cfg: DenseTrainConfig,
    *,
    seed: int = 0,
    val: tuple[TextFeatures, np.ndarray] | None = None,
    on_epoch: Callable[[int, int, dict | None], None] | None = None,
    checkpoint: Path | None = None,
) -> dict | None:
    """InfoNCE against all items; keeps the state with the best validation MRR@10.
    ``on_epoch(epoch, steps so far, validation metrics or None)`` after each epoch, and with
    epoch 0 before the first (what a resumed fit had done: its steps and best validation
    metrics, else 0 and None);
    ``checkpoint``: a folder the fit saves itself to after each epoch and resumes from."""
    with seeded(seed, torch.device("cpu")):
        return _train_dense(proj, feats, items, item_emb, cfg, val, seed, on_epoch, checkpoint)


def dense_step_budget(cfg: DenseTrainConfig, n_items: int) -> int | None:
    """The steps the dense baseline may take: ``examples_per_item`` x items / batch, at least
    ``min_steps``, capped by ``max_steps`` (0 or None: no cap)."""
    if cfg.examples_per_item is None:
        return cfg.max_steps or None
    steps = max(1, math.ceil(cfg.examples_per_item * n_items / cfg.batch_size), cfg.min_steps)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def dense_planned_steps(cfg: DenseTrainConfig, n_items: int, n_captions: int) -> int:
    """The steps the dense baseline plans to take over ``n_captions`` training captions: its
    budget (``dense_step_budget``), at most ``epochs`` passes (validation may stop it earlier)."""
    budget = dense_step_budget(cfg, n_items)
    return min(budget or math.inf, cfg.epochs * math.ceil(n_captions / cfg.batch_size))


@dataclass
class DenseRun:
    """What a dense fit carries from one epoch to the next (resume.py saves it after each)."""

    epoch: int = 0
    steps: int = 0
    best: dict | None = None  # the best validation metrics so far
    best_state: dict | None = None  # the projection's state at them
    since: int = 0  # epochs since validation last improved
    done: bool = False  # the budget is spent or patience ran out


def _train_dense(proj, feats, items, item_emb, cfg, val, seed, on_epoch, ckpt) -> dict | None:
    gen = torch.Generator().manual_seed(seed)
    cands = F.normalize(torch.from_numpy(np.asarray(item_emb, np.float32)), dim=-1)
    device = next(proj.parameters()).device
    bf16 = dense_precision(cfg, len(cands), device) == "bfloat16"
    scored = cands.to(torch.bfloat16) if bf16 else cands  # InfoNCE's (search: float32)
    x, y = feats.pooled, torch.from_numpy(np.asarray(items, np.int64))
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    budget = dense_step_budget(cfg, len(cands))
    planned = dense_planned_steps(cfg, len(cands), len(y))
    schedule = LambdaLR(opt, lambda step: cosine_factor(step, planned)) if cfg.lr_decay else None
    run = DenseRun(best_state=copy.deepcopy(proj.state_dict()))
    if ckpt is not None:
        load_dense_run(ckpt, proj, opt, schedule, gen, run)
    if on_epoch:
        on_epoch(0, run.steps, run.best)  # before the first epoch: where a resumed fit stood
    validating = val is not None and len(val[0]) > 0
    while not run.done and run.epoch < cfg.epochs:
        run.epoch += 1
        batches = torch.randperm(len(y), generator=gen).split(cfg.batch_size)
        batches = batches[: steps_left(budget, run.steps)]
        run.steps += len(batches)
        proj.train()
        for b in batches:
            temperature = proj.log_temp.exp().clamp(min=1e-3)
            loss = info_nce(proj(x[b]), scored, y[b], cfg.negatives, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
        m = _validated(proj, val, cands) if validating else None
        if on_epoch:
            on_epoch(run.epoch, run.steps, m)
        _keep_best(run, m, proj, steps_left(budget, run.steps) == 0, cfg.patience)
        if ckpt is not None:
            save_dense_run(ckpt, proj, opt, schedule, gen, run)
    if validating:
        proj.load_state_dict(run.best_state)
    proj.eval()
    return run.best


def _validated(proj, val, cands) -> dict:
    ranked = dense_search(proj, val[0], cands.numpy(), 10)
    return retrieval_metrics([[i for i, _ in r] for r in ranked], list(val[1]))


def _keep_best(run: DenseRun, m: dict | None, proj, spent: bool, patience: int) -> None:
    """The epoch's validation ``m`` (None: none) kept where it is the best by (MRR@10, R@1);
    ``run.done`` once the budget is ``spent`` or ``patience`` epochs passed without a gain."""
    if m is not None and (run.best is None or validation_order(m) > validation_order(run.best)):
        run.best, run.best_state, run.since = m, copy.deepcopy(proj.state_dict()), 0
    elif m is not None:
        run.since += 1
    run.done = spent or (m is not None and run.since >= patience)


def dense_precision(cfg: DenseTrainConfig, n_items: int, device: torch.device) -> str:
    """The InfoNCE logits' precision: ``cfg.precision``, where ``auto`` is bfloat16 on a
    device that has it natively once the examples-per-item budget, not the ``min_steps``
    floor, sets the steps (above 4,000 items at the defaults). At 10k items bfloat16 trains in
    0.56x float32's time to the same R@1; at 1k (floor-bound, seconds of training) it read
    1.3 points lower over 4 seeds (docs/BENCHMARKS.md)."""
    if cfg.precision == "auto":
        budget = dense_step_budget(cfg, n_items)
        if budget is None or budget <= cfg.min_steps:
            return "float32"
    return resolved_precision(cfg.precision, device)


@torch.no_grad()
def dense_search(
    proj: DenseProjection, feats: TextFeatures, item_emb: np.ndarray | None, k: int, index=None
) -> list[list[tuple[int, float]]]:
    """faiss flat inner-product search of projected queries over the item embeddings."""
    if index is None:
        index = flat_index(item_emb)
    q = proj(feats.pooled).numpy().astype(np.float32)
    scores, idx = searched(index, q, k)
    return [[(int(i), float(s)) for i, s in zip(ri, rs) if i >= 0] for ri, rs in zip(idx, scores)]
