"""A decoder layer with ACE's coarse-to-fine fusion of all encoder layers (ACE.md):
causal self-attention, then a coarse branch (Z = W[E_1; ...; E_S] + b, cross-attended, with a
sigmoid self-gate) plus a fine branch (sum_i alpha_i * CrossAttn(Y, E_i)), then a feed-forward
block. With ``fusion=False`` (ablation) the layer cross-attends the last encoder layer only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ace_core.retrieval.attention import (
    PreparedMemory,
    SelfAttentionPast,
    cross_attention,
    fused_cross_attention,
    keys_values,
    stacked_keys_values,
)


class FusionLayer(nn.Module):
    """Decoder layer: causal self-attention, coarse-to-fine fused cross-attention, FFN."""

    def __init__(self, cfg, n_enc_layers: int):
        """``cfg``: the decoder's RetrieverConfig (width, heads, dropout, fusion)."""
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.fusion = cfg.fusion
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, h, dropout=cfg.dropout, batch_first=True)
        self.coarse_attn = nn.MultiheadAttention(d, h, dropout=cfg.dropout, batch_first=True)
        if cfg.fusion:
            self.coarse_proj = nn.Linear(n_enc_layers * d, d)  # Z = W[E1;..;ES] + b
            self.gate = nn.Linear(d, d)
            self.fine_attn = nn.ModuleList(
                nn.MultiheadAttention(d, h, dropout=cfg.dropout, batch_first=True)
                for _ in range(n_enc_layers)
            )
            self.alpha = nn.Parameter(torch.zeros(n_enc_layers))
        self.ff = nn.Sequential(
            nn.Linear(d, cfg.ff_mult * d),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.ff_mult * d, d),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def prepare(self, layers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(S, B, T, d) projected encoder layers -> this layer's memory keys and values."""
        if not self.fusion:
            return keys_values(self.coarse_attn, layers[-1]), None
        S, B, T, d = layers.shape
        z = self.coarse_proj(layers.permute(1, 2, 0, 3).reshape(B, T, S * d))  # (B, T, d)
        return keys_values(self.coarse_attn, z), stacked_keys_values(self.fine_attn, layers)

    def forward(self, y, kv, memory: PreparedMemory, causal):
        """y (B, N, d); kv: this layer's part of ``memory`` (``prepare``)."""
        q = self.norm1(y)
        y = y + self.drop(self.self_attn(q, q, q, attn_mask=causal, need_weights=False)[0])
        return self._attend_memory_and_feed_forward(y, kv, memory)

    def step(self, y, kv, memory: PreparedMemory, past: SelfAttentionPast | None):
        """The newest position only (inference): y (R, 1, d) attends to itself and ``past``,
        the keys and values of this layer's earlier positions of the same rows. Returns its
        output and the past grown by it. Equals ``forward``'s last position (no dropout)."""
        att, d = self.self_attn, self.self_attn.embed_dim
        h = att.num_heads
        q, k, v = F.linear(self.norm1(y), att.in_proj_weight, att.in_proj_bias).split(d, -1)
        q, k, v = (t.view(t.shape[0], 1, h, d // h).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past.keys, k], 2), torch.cat([past.values, v], 2)
        o = F.scaled_dot_product_attention(q, k, v)  # (R, h, 1, d/h): no later position exists
        y = y + att.out_proj(o.transpose(1, 2).reshape(y.shape))
        return self._attend_memory_and_feed_forward(y, kv, memory), SelfAttentionPast(k, v)

    def _attend_memory_and_feed_forward(self, y, kv, memory: PreparedMemory):
        q = self.norm2(y)
        coarse_kv, fine_kv = kv
        keep, groups = memory.keep, memory.groups
        ctx = cross_attention(self.coarse_attn, q, coarse_kv, keep, groups)
        if self.fusion:
            w = torch.softmax(self.alpha, 0)
            ctx = ctx * torch.sigmoid(self.gate(ctx))  # coarse, with its sigmoid self-gate
            ctx = ctx + fused_cross_attention(self.fine_attn, w, q, fine_kv, keep, groups)
        y = y + self.drop(ctx)
        return y + self.drop(self.ff(self.norm3(y)))
