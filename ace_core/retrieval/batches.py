"""The batches of an epoch: caption batches and indexing-task batches, shuffled together, and
the replay an incremental fine-tune draws from (rehearsal of old items)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
    updates: str = "all"  # IngestConfig.updates: what the fine-tune may change

    def draw(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        def pick(new, old, k):
            old = torch.from_numpy(np.asarray(old, np.int64))
            old = old[torch.randperm(len(old), generator=gen)[: min(k, len(old))]]
            return torch.cat([torch.from_numpy(np.asarray(new, np.int64)), old])

        return (
            pick(self.new_caps, self.old_caps, self.per_epoch_caps),
            pick(self.new_rows, self.old_rows, self.per_epoch_rows),
        )


def epoch_batches(
    caps: torch.Tensor,
    index_rows: torch.Tensor,
    cap_items: torch.Tensor,
    cfg,
    gen: torch.Generator,
) -> list[tuple[str, torch.Tensor]]:
    """Shuffled mix of caption batches (indices into the training captions) and indexing-task
    batches (item rows); ``cfg`` a TrainConfig."""
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


def _balancing_rows(caps, index_rows, cap_items, cfg) -> torch.Tensor:
    """Extra indexing examples for items without training captions, as many as a captioned
    item has captions, so the decoder holds no prior for captioned items' IDs that the
    zero-shot path would inherit (BENCHMARKS: "Every ID a target as often")."""
    if not cfg.balance_index_task or not len(caps):
        return index_rows[:0]
    bare = index_rows[~torch.isin(index_rows, cap_items)]
    per_captioned = round(len(caps) / len(cap_items.unique()))
    return bare.repeat(per_captioned) if len(bare) and per_captioned else index_rows[:0]
