"""The optimisation steps of the generative retriever: what a step reads, its loss, the
optimisers and the learning-rate plan. training.py runs them under its budget and validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ace_core.retrieval._torch import autocast, cosine_factor
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.losses import id_loss, info_nce


@dataclass
class StepTargets:
    """What every training step reads: the item embeddings, their ID tokens, each training
    caption's item row, and (a tied decoder) the trie and each item's node at every depth."""

    emb: torch.Tensor  # (items, D) on the device
    ids: torch.Tensor  # (items, L + 2) vocabulary ids on the device
    cap_items: torch.Tensor  # (captions,) item rows, on the CPU
    trie: Trie
    gold_nodes: np.ndarray | None  # (items, L + 2) trie nodes; None: not tied

    @classmethod
    def of(cls, decoder, item_emb, id_tokens, train_items, trie: Trie, device) -> StepTargets:
        emb = torch.from_numpy(np.asarray(item_emb, np.float32)).to(device)
        ids = np.asarray(id_tokens, np.int64)
        gold_nodes = None
        if decoder.tied:
            if trie.vectors is None:
                raise ValueError("a tied decoder trains on a tied trie (Trie.tie)")
            gold_nodes = trie.paths(ids)
        cap_items = torch.from_numpy(np.asarray(train_items, np.int64))
        return cls(emb, torch.from_numpy(ids).to(device), cap_items, trie, gold_nodes)

    def tied(self, q: torch.Tensor, items: torch.Tensor) -> tuple | None:
        if self.gold_nodes is None:
            return None
        return q, self.trie, self.gold_nodes[items.cpu().numpy()]


def train_epoch(
    loss_of, decoder, opt: Optimizer, batches, on_step: Callable[[int, int], None] | None = None
) -> tuple[float, int]:
    """One pass over the mixed caption / indexing batches, ``loss_of(kind, batch)`` each
    (distributed.data_parallel); returns (mean loss, examples). ``on_step(steps,
    examples)``: after each step, the epoch's counts so far."""
    decoder.train()
    device = next(decoder.parameters()).device
    total, count = 0.0, 0
    for n, (kind, b) in enumerate(batches, 1):
        with autocast(device):
            loss = loss_of(kind, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, count = total + loss.item() * len(b), count + len(b)
        if on_step:
            on_step(n, count)
    return total / max(count, 1), count


def step_loss(decoder, kind: str, b, train_feats, t: StepTargets, cfg, device) -> torch.Tensor:
    """The loss of one batch: captions (with the bridge's InfoNCE) or indexing-task items."""
    if kind == "cap":
        memory, pad, q = decoder.memory_from_text(*train_feats.layers(b))
        items = t.cap_items[b].to(device)
    else:
        items = b.to(device)
        memory, pad = decoder.memory_from_items(t.emb[items]), None
        q = None
    tied_q = q if q is not None else F.normalize(t.emb[items], dim=-1)
    loss = id_loss(decoder, memory, pad, t.ids[items], cfg.rdrop_weight, t.tied(tied_q, items))
    if q is not None and cfg.bridge_weight > 0:
        nce = info_nce(q, t.emb, items, cfg.bridge_negatives, offsets=decoder.item_offset)
        loss = loss + cfg.bridge_weight * nce
    return loss


class Optimizer:
    """AdamW, fused (one kernel for all parameters; CPU: 7.4 -> 2.4 ms a step), over the
    dense parameters, gradients clipped to norm 1; SparseAdam over the per-item offsets (a
    step updates only the rows it read). Both follow the cosine decay when ``lr_decay``.
    A fine-tune's ``replay.updates`` may keep old items' offsets ("new-items") or every
    weight but the new items' offsets ("new-offsets") as the parent left them."""

    def __init__(self, decoder, cfg, replay=None):
        updates = replay.updates if replay is not None else "all"
        offsets = [] if decoder.item_offset is None else [decoder.item_offset.vectors.weight]
        shared = [p for p in decoder.parameters() if all(p is not o for o in offsets)]
        self.params = [] if updates == "new-offsets" else shared
        self.frozen = shared if updates == "new-offsets" else []  # their grads dropped
        self.opts = (
            [torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)]
            if self.params
            else []
        )
        self.opts += [torch.optim.SparseAdam(offsets, lr=cfg.lr)] if offsets else []
        if offsets and updates != "all":
            offsets[0].register_hook(rows_only(torch.as_tensor(replay.new_rows)))
        self.cfg, self.schedules = cfg, []

    def plan(self, planned: int, done: int = 0) -> None:
        """The cosine decay over ``planned`` steps, once (none without ``lr_decay``);
        ``done``: steps already taken (a resumed run: its optimisers' state is loaded)."""
        if not self.cfg.lr_decay or self.schedules:
            return
        self.schedules = [
            torch.optim.lr_scheduler.LambdaLR(
                o, lambda step: cosine_factor(step, planned), last_epoch=done - 1
            )
            for o in self.opts
        ]

    def zero_grad(self) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=True)
        for p in self.frozen:
            p.grad = None

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        for o in self.opts:
            o.step()
        for sched in self.schedules:
            sched.step()


def rows_only(rows: torch.Tensor):
    """A gradient hook that keeps the gradient of ``rows`` of a table and drops the rest (a
    sparse gradient stays sparse: SparseAdam then never touches the other rows)."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        if not grad.is_sparse:
            kept = torch.zeros_like(grad)
            kept[rows] = grad[rows]
            return kept
        grad = grad.coalesce()
        keep = torch.isin(grad.indices()[0], rows.to(grad.device))
        return torch.sparse_coo_tensor(
            grad.indices()[:, keep],
            grad.values()[keep],
            grad.shape,
            is_coalesced=True,  # a subset of coalesced indices stays sorted and unique
            check_invariants=False,
        )

    return hook
