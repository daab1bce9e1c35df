"""Trained per-item vectors of the captions path (Tied-Atomic's trained item vectors): a whole
ID's score on the captions path is the bridged query's inner product with the item's embedding
plus its offset, which training moves towards where the item's own captions land, so the path
remembers what each item's captions said (1k items, seen protocol: R@1 0.47 -> 0.89,
docs/BENCHMARKS.md).

An item without training captions has no offset to learn, and captioned items' offsets lift
them for every caption-like query: left alone, the captions path would never rank such an item
first (unseen protocol, 1k items: R@1 0.001). So after training those items' offsets are zeroed
and they get one bias instead, fit on the validation queries twice over, as they are and as if
each query's item had no captions (``blinded``), weighing both alike (as the fusion fit does).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BIAS_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # 0 .. 1 (inner products of units)


class ItemOffsets(nn.Module):
    """``vectors`` (n, D), sparse (a step updates the rows it read); ``bias`` (n,): the
    uncaptioned items' bias (0 for the others); ``captioned`` (n,): 1 for the items that had
    training captions (set once calibrated)."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.vectors = nn.Embedding(n_items, dim, sparse=True)
        nn.init.zeros_(self.vectors.weight)
        self.register_buffer("bias", torch.zeros(n_items))
        self.register_buffer("captioned", torch.ones(n_items))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.vectors(rows)

    def leaf_score(self, q: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """q (R, D), rows (R,) -> what the offsets add to each item's inner product."""
        return (q * self.vectors(rows)).sum(1) + self.bias[rows].to(q.dtype)

    @torch.no_grad()
    def set_uncaptioned(self, captioned: np.ndarray, bias: float) -> None:
        bare = torch.from_numpy(~np.asarray(captioned, bool))
        self.vectors.weight[bare] = 0.0
        self.bias.zero_()
        self.bias[bare] = bias
        self.captioned.fill_(1.0)
        self.captioned[bare] = 0.0


@torch.no_grad()
def fit_uncaptioned_bias(
    offsets: torch.Tensor,
    q: torch.Tensor,
    gold: np.ndarray,
    item_emb: torch.Tensor,
    captioned: np.ndarray,
) -> float:
    """The bias (of BIAS_GRID) with the best validation R@1, the queries ``q`` (the bridge's)
    scored exactly over every item (``item_emb`` plus the ``offsets`` vectors) as they are and
    blinded, half each; 0 when every item is captioned (nothing to weigh)."""
    captioned = np.asarray(captioned, bool)
    if captioned.all() or not len(gold):
        return 0.0
    base = q @ item_emb.T  # (queries, items)
    lift = q @ offsets.T
    cap = torch.from_numpy(captioned)
    g = torch.from_numpy(np.asarray(gold, np.int64))
    rows = torch.arange(len(g))
    scores = []
    for bias in BIAS_GRID:
        s = torch.where(cap[None], base + lift, base + bias)
        plain = (s.argmax(1) == g).float().mean()
        blind = s.clone()
        blind[rows, g] = base[rows, g] + bias  # the gold item as if it had no captions
        scores.append(0.5 * float(plain) + 0.5 * float((blind.argmax(1) == g).float().mean()))
    return BIAS_GRID[int(np.argmax(scores))]


@torch.no_grad()
def calibrate_offsets(decoder, feats, gold: np.ndarray, item_emb: np.ndarray, captioned) -> float:
    """After training: the uncaptioned items' offsets zeroed and their bias fit on the
    validation queries (``feats``, ``gold``); returns the bias."""
    decoder.eval()
    parts = []
    for start in range(0, len(gold), 64):
        rows = torch.arange(start, min(start + 64, len(gold)))
        parts.append(decoder.memory_from_text(*feats.layers(rows))[2].float().cpu())
    q = torch.cat(parts) if parts else torch.zeros(0, item_emb.shape[1])
    emb = torch.from_numpy(np.asarray(item_emb, np.float32))
    vectors = decoder.item_offset.vectors.weight.detach().float().cpu()
    bias = fit_uncaptioned_bias(vectors, q, gold, emb, captioned)
    decoder.item_offset.set_uncaptioned(captioned, bias)
    return bias
