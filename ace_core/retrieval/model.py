"""The generative retriever: text encoder + ID decoder with ACE's coarse-to-fine fusion.

The decoder reads the outputs of *all* encoder layers E_1..E_S (fusion_layer.py): every token
of each, or (``pooled_memory``) each layer mean-pooled into one token.

Tied output vectors (issue 40, ace_core.retrieval.tied): the query is also brought into the
items' space (the *bridge* from caption features; the embedding itself for an item-space
query), every allowed next token is scored by its learned logit plus the query's inner product
with the items below it, and a whole ID adds its item's own score: for the captions path the
item's embedding plus a trained per-item offset (``item_offsets``: what the item's training
captions taught, Tied-Atomic's trained item vectors), for an item-space query the embedding.

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

from ace_core.retrieval.attention import DecodingState, PreparedMemory
from ace_core.retrieval.fusion_layer import FusionLayer
from ace_core.retrieval.item_offsets import ItemOffsets

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
    pooled_memory: bool = True  # the decoder reads each encoder layer mean-pooled, one
    #                              token per layer, instead of every token (text_features.py)
    tied: bool = True  # tied output vectors of the ID tree (ace_core.retrieval.tied); False:
    #                    the ACE decoder alone (every version trained before issue 40)
    tied_scale: float = 20.0  # starting scale of the tied node scores, one per depth (learnt)
    tied_leaf: float = 100.0  # weight of an item's own inner product in the score of its ID
    item_offsets: bool = True  # the captions path scores whole IDs by a trained vector per item
    merge_captioned: float = 0.5  # pure generation: the captions path's share of an item's
    merge_uncaptioned: float = 0.25  # probability (the rest the zero-shot path's), for items
    #                                  with training captions and without (item_offsets.py)
    bridge_hidden: int = 512  # the bridge's hidden width (0: one linear layer)
    text_precision: str = "auto"  # the frozen text encoder's arithmetic: float32, bfloat16
    #                               or auto (bfloat16 where the device has it natively: an
    #                               Ampere+ GPU, a CPU with AVX512-BF16 or AMX; text_encoder.py)
    seed: int = 0


# What versions trained before a key existed had (their saved configs lack it): before issue
# 40 the ACE decoder alone; before bfloat16 text features, a float32 text encoder.
LEGACY_RETRIEVER = {
    "tied": False,
    "pooled_memory": False,
    "item_offsets": False,
    "bridge_hidden": 0,
    "text_precision": "float32",
}


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


def _bridge(enc_hidden: int, item_dim: int, hidden: int) -> nn.Module:
    if not hidden:
        return nn.Linear(enc_hidden, item_dim)
    return nn.Sequential(nn.Linear(enc_hidden, hidden), nn.GELU(), nn.Linear(hidden, item_dim))


class IDDecoder(nn.Module):
    """Generates ID tokens from encoder layer outputs (or from an item embedding)."""

    def __init__(
        self,
        cfg: RetrieverConfig,
        vocab: Vocab,
        enc_hidden: int,
        n_enc_layers: int,
        item_dim: int,
        n_items: int = 0,
    ):
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        self.dims = {
            "enc_hidden": enc_hidden,
            "n_enc_layers": n_enc_layers,
            "item_dim": item_dim,
            "n_items": n_items,
        }  # what rebuilds it
        d = cfg.d_model
        self.n_enc_layers = n_enc_layers
        self.enc_proj = nn.ModuleList(nn.Linear(enc_hidden, d) for _ in range(n_enc_layers))
        self.index_proj = nn.Linear(item_dim, cfg.index_memory_tokens * d)
        self.tok = nn.Embedding(vocab.size, d)
        self.pos = nn.Embedding(vocab.id_length + 1, d)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        # bridge: pooled text -> item embedding space (trained with InfoNCE against items)
        self.bridge = _bridge(enc_hidden, item_dim, cfg.bridge_hidden) if cfg.bridge else None
        self.layers = nn.ModuleList(FusionLayer(cfg, n_enc_layers) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.tied_log_scale = (
            nn.Parameter(torch.full((vocab.id_length,), math.log(cfg.tied_scale)))
            if cfg.tied
            else None
        )

        use_offsets = cfg.tied and cfg.item_offsets
        self.item_offset = ItemOffsets(n_items, item_dim) if use_offsets else None

    @property
    def tied(self) -> bool:
        return self.tied_log_scale is not None

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
