"""Cross-attention over a prepared decoder memory, and the state of an incremental decoding.

The keys and values of the encoder memory do not depend on the tokens decoded so far, so they
are projected once per batch (``prepare``) instead of once per decoding step and beam, and
the fine branch's S attentions (one per encoder layer) run as one batched attention. The
keys and values are laid out per head once, as the products need them (``HeadsKV``), so no
attention call copies or rescales them (both R-Drop passes and every beam step read the same
layout). The parameters stay those of the ``nn.MultiheadAttention`` modules that own them,
and the arithmetic is theirs (in-projection, scaled dot product with key padding, dropout on
the attention weights when training, out-projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class HeadsKV:
    """Keys and values of G attentions (h heads) over B memory rows of T tokens, per head:
    ``keys`` (G*B*h, d/h, T), ready to multiply the queries; ``values`` (G*B*h, T, d/h)."""

    keys: torch.Tensor
    values: torch.Tensor
    rows: int  # B


def _heads_kv(kv: torch.Tensor, h: int) -> HeadsKV:
    """(G, B, T, 2d) keys and values side by side -> their per-head layout (one copy each)."""
    G, B, T, two_d = kv.shape
    dh = two_d // (2 * h)
    x = kv.view(G, B, T, 2, h, dh)
    keys = x[:, :, :, 0].permute(0, 1, 3, 4, 2).reshape(G * B * h, dh, T)
    values = x[:, :, :, 1].permute(0, 1, 3, 2, 4).reshape(G * B * h, T, dh)
    return HeadsKV(keys, values, B)


@dataclass(frozen=True)
class PreparedMemory:
    """Per decoder layer: the coarse keys and values (one attention) and the fine ones (S
    attentions; None without fusion); ``keep`` (B, T) True where a memory token is real (None: all);
    ``owners`` (R,): the memory row each decoded row reads (None: row i reads row i), and
    ``groups``: its grid for the attention (``_slots``), computed once per ``select``."""

    kv: list[tuple[HeadsKV, HeadsKV | None]]
    keep: torch.Tensor | None
    owners: torch.Tensor | None = None
    groups: tuple[torch.Tensor, int] | None = None

    def select(self, rows: torch.Tensor) -> PreparedMemory:
        """The memory of the given rows (beam search: each live beam reads its query's row).
        Nothing is copied: the attention groups the rows by the memory row they read."""
        owners = rows if self.owners is None else self.owners.index_select(0, rows)
        groups = _slots(owners, self.kv[0][0].rows)
        return PreparedMemory(self.kv, self.keep, owners, groups)


@dataclass(frozen=True)
class SelfAttentionPast:
    """One decoder layer's self-attention keys and values of the positions decoded so far,
    per row and head: (R, h, N, d/h) each."""

    keys: torch.Tensor
    values: torch.Tensor

    def select(self, rows: torch.Tensor) -> SelfAttentionPast:
        return SelfAttentionPast(self.keys[rows], self.values[rows])


@dataclass(frozen=True)
class DecodingState:
    """Where an incremental decoding stands: the memory each row reads, each layer's past
    (None before the first token) and the tokens fed so far."""

    memory: PreparedMemory
    past: list[SelfAttentionPast] | None = None
    length: int = 0

    def select(self, rows: torch.Tensor) -> DecodingState:
        """The state of the given rows (a beam step keeps the beams it extends)."""
        past = None if self.past is None else [p.select(rows) for p in self.past]
        return DecodingState(self.memory.select(rows), past, self.length)


def keys_values(att: nn.MultiheadAttention, x: torch.Tensor) -> HeadsKV:
    """(B, T, d) memory -> the keys and values of ``att`` (one attention)."""
    d = att.embed_dim
    return _heads_kv(F.linear(x, att.in_proj_weight[d:], att.in_proj_bias[d:])[None], att.num_heads)


def stacked_keys_values(atts: nn.ModuleList, layers: torch.Tensor) -> HeadsKV:
    """(S, B, T, d) encoder layers -> the keys and values of layer i through attention i."""
    S, B, T, d = layers.shape
    w = torch.stack([a.in_proj_weight[d:] for a in atts])  # (S, 2d, d)
    b = torch.stack([a.in_proj_bias[d:] for a in atts])[:, None]  # (S, 1, 2d)
    kv = torch.baddbmm(b, layers.reshape(S, B * T, d), w.transpose(1, 2))
    return _heads_kv(kv.view(S, B, T, 2 * d), atts[0].num_heads)


def _attend(att, queries, kv: HeadsKV, keep, groups) -> torch.Tensor:
    """queries (G, R, N, d) over ``kv`` -> (G, R, N, d), before the out-projection.
    With ``groups``, the rows reading one memory row become one longer query of that row
    (cross-attention treats each query token on its own, so this changes nothing)."""
    if groups is not None:
        slots, per_row = groups
        G, R, n, d = queries.shape
        grouped = queries.new_zeros(G, kv.rows * per_row, n, d)
        grouped[:, slots] = queries
        o = _attend(att, grouped.view(G, kv.rows, per_row * n, d), kv, keep, None)
        return o.view(G, -1, n, d)[:, slots]
    G, B, n, d = queries.shape
    h = att.num_heads
    dh = d // h
    q = queries.view(G, B, n, h, dh).transpose(2, 3).reshape(G * B * h, n, dh)
    scores = torch.bmm(q * dh**-0.5, kv.keys)  # (G*B*h, n, T)
    if keep is not None:
        T = keep.shape[1]
        hidden = ~keep[None, :, None, None, :]  # (1, B, 1, 1, T)
        scores = scores.view(G, B, h, n, T).masked_fill(hidden, float("-inf")).view(-1, n, T)
    weights = torch.softmax(scores, dim=-1)
    if att.training and att.dropout > 0:
        weights = F.dropout(weights, att.dropout)
    o = torch.bmm(weights, kv.values)  # (G*B*h, n, dh)
    return o.view(G, B, h, n, dh).transpose(2, 3).reshape(G, B, n, d)


def _slots(owners: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, int]:
    """Each decoded row's slot in a (memory row, k) grid of k = the most rows per memory row."""
    order = torch.argsort(owners, stable=True)
    counts = torch.bincount(owners, minlength=n_rows)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(owners)
    rank[order] = torch.arange(len(owners), device=owners.device) - starts[owners[order]]
    per_row = int(counts.max())
    return owners * per_row + rank, per_row


def cross_attention(att: nn.MultiheadAttention, q, kv, keep, groups=None) -> torch.Tensor:
    """``att(q, memory, memory, key_padding_mask=~keep)``, ``kv = keys_values(att, memory)``."""
    d = att.embed_dim
    queries = F.linear(q, att.in_proj_weight[:d], att.in_proj_bias[:d])[None]
    return att.out_proj(_attend(att, queries, kv, keep, groups)[0])


def fused_cross_attention(atts: nn.ModuleList, weights, q, kv, keep, groups=None):
    """sum_i weights[i] * atts[i](q, E_i, E_i) given ``kv = stacked_keys_values(atts, E)``."""
    S, (B, n, d) = len(atts), q.shape
    w_in = torch.stack([a.in_proj_weight[:d] for a in atts])  # (S, d, d)
    b_in = torch.stack([a.in_proj_bias[:d] for a in atts])[:, None]
    queries = torch.baddbmm(b_in, q.reshape(1, B * n, d).expand(S, -1, -1), w_in.transpose(1, 2))
    o = _attend(atts[0], queries.view(S, B, n, d), kv, keep, groups)
    w_out = torch.stack([a.out_proj.weight for a in atts]) * weights[:, None, None]
    b_out = weights @ torch.stack([a.out_proj.bias for a in atts])
    return torch.einsum("sbnd,sed->bne", o, w_out) + b_out
