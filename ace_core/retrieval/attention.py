"""Cross-attention over a prepared decoder memory.

The keys and values of the encoder memory do not depend on the tokens decoded so far, so they
are projected once per batch (``prepare``) instead of once per decoding step and beam, and
the fine branch's S attentions (one per encoder layer) run as one batched attention. The
parameters stay those of the ``nn.MultiheadAttention`` modules that own them, and the
arithmetic is theirs (in-projection, scaled dot product with key padding, out-projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class PreparedMemory:
    """Per decoder layer: the coarse keys+values (1, B, T, 2d) and the fine ones (S, B, T, 2d)
    (None without fusion); ``keep`` (B, T) True where a memory token is real (None: all);
    ``owners`` (R,): the memory row each decoded row reads (None: row i reads row i), and
    ``groups``: its grid for the attention (``_slots``), computed once per ``select``."""

    kv: list[tuple[torch.Tensor, torch.Tensor | None]]
    keep: torch.Tensor | None
    owners: torch.Tensor | None = None
    groups: tuple[torch.Tensor, int] | None = None

    def select(self, rows: torch.Tensor) -> PreparedMemory:
        """The memory of the given rows (beam search: each live beam reads its query's row).
        Nothing is copied: the attention groups the rows by the memory row they read."""
        owners = rows if self.owners is None else self.owners.index_select(0, rows)
        groups = _slots(owners, self.kv[0][0].shape[1])
        return PreparedMemory(self.kv, self.keep, owners, groups)


def keys_values(att: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """(B, T, d) memory -> (1, B, T, 2d) keys and values of ``att``."""
    d = att.embed_dim
    return F.linear(x, att.in_proj_weight[d:], att.in_proj_bias[d:])[None]


def stacked_keys_values(atts: nn.ModuleList, layers: torch.Tensor) -> torch.Tensor:
    """(S, B, T, d) encoder layers -> (S, B, T, 2d): layer i through attention i."""
    S, B, T, d = layers.shape
    w = torch.stack([a.in_proj_weight[d:] for a in atts])  # (S, 2d, d)
    b = torch.stack([a.in_proj_bias[d:] for a in atts])[:, None]  # (S, 1, 2d)
    return torch.baddbmm(b, layers.reshape(S, B * T, d), w.transpose(1, 2)).view(S, B, T, 2 * d)


def _attend(att, queries, kv, keep, groups) -> torch.Tensor:
    """queries (G, R, N, d), kv (G, B, T, 2d) -> (G, R, N, d), before the out-projection.
    With ``groups``, the rows reading one memory row become one longer query of that row
    (cross-attention treats each query token on its own, so this changes nothing)."""
    if groups is not None:
        slots, per_row = groups
        G, R, n, d = queries.shape
        grouped = queries.new_zeros(G, kv.shape[1] * per_row, n, d)
        grouped[:, slots] = queries
        o = _attend(att, grouped.view(G, kv.shape[1], per_row * n, d), kv, keep, None)
        return o.view(G, -1, n, d)[:, slots]
    G, B, n, d = queries.shape
    h = att.num_heads
    keys, values = kv.split(d, dim=-1)

    def heads(x):  # (G, B, L, d) -> (G * B, h, L, d / h)
        return x.reshape(G * B, x.shape[2], h, d // h).transpose(1, 2)

    mask = None if keep is None else keep.repeat(G, 1)[:, None, None, :]
    p = att.dropout if att.training else 0.0
    o = F.scaled_dot_product_attention(
        heads(queries), heads(keys), heads(values), attn_mask=mask, dropout_p=p
    )
    return o.transpose(1, 2).reshape(G, B, n, d)


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
