"""The generative retriever: text encoder + ID decoder with ACE's coarse-to-fine fusion.

The decoder reads the outputs of *all* encoder layers E_1..E_S (B, T, H):
- coarse branch: Z = W [E_1; ...; E_S] + b, cross-attend the decoder states Y to Z, then a
  sigmoid self-gate;
- fine branch: sum_i alpha_i * CrossAttn(Y, E_i), one attention per layer, learnable alpha;
- the two outputs are added to Y and feed the feed-forward block and the next layer.
With ``fusion=False`` (ablation) each decoder layer cross-attends the last encoder layer only.

Items without captions are learnt through an *indexing task*: the candidate embedding is
projected to a few memory tokens that stand in for every encoder layer, and the decoder learns
to generate the item's ID from it.

Vocabulary: PAD, BOS, then coarse tokens, then per-level fine tokens, then suffix tokens.
An ID (c, f_1..f_L, u) is the token sequence BOS c f_1 .. f_L u (length L + 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ace_core.retrieval.attention import (
    DecodingState,
    PreparedMemory,
    SelfAttentionPast,
    cross_attention,
    fused_cross_attention,
    keys_values,
    stacked_keys_values,
)

PAD, BOS = 0, 1
N_SPECIAL = 2


@dataclass(frozen=True)
class RetrieverConfig:
    encoder_path: str | None = None  # local HF encoder; None: all-MiniLM-L6-v2 from its package
    d_model: int = 128  # decoder width (TIGER: 128)
    n_layers: int = 2  # decoder layers
    n_heads: int = 4
    ff_mult: int = 4  # feed-forward width = ff_mult * d_model
    dropout: float = 0.1
    fusion: bool = True  # ACE coarse-to-fine fusion of all encoder layers (False: last layer)
    index_memory_tokens: int = 4  # memory tokens for an item embedding (indexing task, bridge)
    bridge: bool = True  # add the query's projection into the item space as memory tokens
    max_query_tokens: int = 48  # longer queries are truncated
    seed: int = 0


@dataclass(frozen=True)
class Vocab:
    """Token layout of the ID vocabulary."""

    n_coarse: int
    levels: int
    codebook_size: int
    n_suffix: int

    @property
    def coarse_offset(self) -> int:
        return N_SPECIAL

    def fine_offset(self, level: int) -> int:
        return N_SPECIAL + self.n_coarse + level * self.codebook_size

    @property
    def suffix_offset(self) -> int:
        return self.fine_offset(self.levels)

    @property
    def size(self) -> int:
        return self.suffix_offset + self.n_suffix

    @property
    def id_length(self) -> int:
        return self.levels + 2

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """(n, L + 2) ID tokens (coarse, fine..., suffix) -> (n, L + 2) vocabulary ids."""
        t = np.asarray(tokens, np.int64)
        if t.shape[1] != self.id_length:
            raise ValueError(
                f"IDs have {t.shape[1]} tokens, the vocabulary expects {self.id_length}"
            )
        if (t[:, -1] >= self.n_suffix).any():
            raise ValueError(
                f"suffix {int(t[:, -1].max())} exceeds the vocabulary ({self.n_suffix})"
            )
        offs = (
            [self.coarse_offset]
            + [self.fine_offset(lv) for lv in range(self.levels)]
            + [self.suffix_offset]
        )
        return t + np.asarray(offs, np.int64)[None, :]


def mean_pool(last: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(last.dtype)
    return (last * m).sum(1) / m.sum(1).clamp(min=1e-6)


class FusionLayer(nn.Module):
    """Decoder layer: causal self-attention, coarse-to-fine fused cross-attention, FFN."""

    def __init__(self, cfg: RetrieverConfig, n_enc_layers: int):
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


class IDDecoder(nn.Module):
    """Generates ID tokens from encoder layer outputs (or from an item embedding)."""

    def __init__(
        self, cfg: RetrieverConfig, vocab: Vocab, enc_hidden: int, n_enc_layers: int, item_dim: int
    ):
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        d = cfg.d_model
        self.n_enc_layers = n_enc_layers
        self.enc_proj = nn.ModuleList(nn.Linear(enc_hidden, d) for _ in range(n_enc_layers))
        self.index_proj = nn.Linear(item_dim, cfg.index_memory_tokens * d)
        self.tok = nn.Embedding(vocab.size, d)
        self.pos = nn.Embedding(vocab.id_length + 1, d)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        # bridge: pooled text -> item embedding space (trained with InfoNCE against items)
        self.bridge = nn.Linear(enc_hidden, item_dim) if cfg.bridge else None
        self.layers = nn.ModuleList(FusionLayer(cfg, n_enc_layers) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)

    def init_id_embeddings(
        self, centroids: np.ndarray, codebooks: np.ndarray | None, seed: int
    ) -> None:
        """ID token embeddings from the K-Means centroids and RQ-VAE codebooks, projected to
        the model width by a fixed random projection (scaled to the embedding init's norm)."""
        g = torch.Generator().manual_seed(seed)
        d = self.cfg.d_model

        def project(v: np.ndarray) -> torch.Tensor:
            v = torch.from_numpy(np.asarray(v, np.float32))
            p = torch.randn(v.shape[1], d, generator=g) / math.sqrt(v.shape[1])
            out = v @ p
            return out / out.norm(dim=1, keepdim=True).clamp(min=1e-6) * 0.02 * math.sqrt(d)

        with torch.no_grad():
            v = self.vocab
            c = centroids[: v.n_coarse]
            self.tok.weight[v.coarse_offset : v.coarse_offset + len(c)] = project(c)
            if codebooks is not None:
                for lv in range(min(v.levels, len(codebooks))):
                    cb = codebooks[lv][: v.codebook_size]
                    start = v.fine_offset(lv)
                    self.tok.weight[start : start + len(cb)] = project(cb)

    def memory_from_text(self, layers: torch.Tensor, pad: torch.Tensor | None):
        """(S, B, T, H) encoder layers -> memory (S, B, T [+ M], d), its pad mask, and the
        query's bridge embedding (B, D) in the item space (None without a bridge)."""
        mem = torch.stack([proj(layers[i]) for i, proj in enumerate(self.enc_proj)])
        if self.bridge is None:
            return mem, pad, None
        if pad is None:
            pad = torch.zeros(mem.shape[1], mem.shape[2], dtype=torch.bool, device=mem.device)
        pooled = mean_pool(layers[-1], (~pad).to(layers.dtype))
        q = F.normalize(self.bridge(pooled), dim=-1)
        extra = self.memory_from_items(q)
        pad = torch.cat(
            [pad, torch.zeros(pad.shape[0], extra.shape[2], dtype=torch.bool, device=pad.device)],
            dim=1,
        )
        return torch.cat([mem, extra], dim=2), pad, q

    def memory_from_items(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) item embeddings -> (S, B, M, d): the same memory for every layer."""
        m = self.index_proj(emb).view(emb.shape[0], self.cfg.index_memory_tokens, -1)
        return m.unsqueeze(0).expand(self.n_enc_layers, -1, -1, -1)

    def prepare(self, memory: torch.Tensor, mem_pad: torch.Tensor | None) -> PreparedMemory:
        """memory (S, B, T, d), mem_pad (B, T) True = pad -> each layer's keys and values,
        computed once for every decoding step (and both R-Drop passes)."""
        keep = None if mem_pad is None else ~mem_pad
        return PreparedMemory([layer.prepare(memory) for layer in self.layers], keep)

    def decode(self, memory: PreparedMemory, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N) starting with BOS -> logits (B, N, V)."""
        n = tokens.shape[1]
        y = self.tok(tokens) + self.pos(torch.arange(n, device=tokens.device))[None]
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool, device=tokens.device), 1)
        for layer, kv in zip(self.layers, memory.kv):
            y = layer(y, kv, memory, causal)
        return self.norm(y) @ self.tok.weight.T  # tied output embeddings

    def step(self, state: DecodingState, tokens: torch.Tensor):
        """Feed each row its next token (R,) -> the logits of the token after it (R, V) and
        the grown state. Only the new position is computed (the earlier positions' keys and
        values are in ``state``), so a beam step costs the same at any depth; the logits equal
        ``decode``'s last position over the same tokens (inference only: no dropout)."""
        pos = torch.full_like(tokens, state.length)
        y = (self.tok(tokens) + self.pos(pos))[:, None]  # (R, 1, d)
        past = []
        for n, (layer, kv) in enumerate(zip(self.layers, state.memory.kv)):
            y, layer_past = layer.step(y, kv, state.memory, state.past and state.past[n])
            past.append(layer_past)
        logits = self.norm(y[:, 0]) @ self.tok.weight.T
        return logits, DecodingState(state.memory, past, state.length + 1)

    def forward(
        self, memory: torch.Tensor, mem_pad: torch.Tensor | None, tokens: torch.Tensor
    ) -> torch.Tensor:
        """memory (S, B, T, d), tokens (B, N) starting with BOS -> logits (B, N, V)."""
        return self.decode(self.prepare(memory, mem_pad), tokens)
