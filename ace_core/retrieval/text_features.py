"""Frozen text-encoder features of a list of texts, computed once and cached within a budget."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ace_core.retrieval.model import mean_pool
from ace_core.retrieval.text_encoder import TextEncoder


class TextFeatures:
    """Frozen-encoder features of a list of texts: all layers (S, N, T, H) and pooled (N, H).

    Layers are cached in float16 within ``cache_mb``, each text at its own token length (not
    the longest text's), as many texts as fit in order; the rest are recomputed per batch."""

    def __init__(
        self,
        encoder: TextEncoder,
        tokenizer,
        texts: Sequence[str],
        *,
        device,
        max_tokens: int = 48,
        cache_mb: int = 1024,
        batch: int = 128,
    ):
        self.encoder, self.device = encoder, torch.device(device)
        if texts:
            enc = tokenizer(
                list(texts), padding=True, truncation=True, max_length=max_tokens,
                return_tensors="pt",
            )  # fmt: skip
            self.ids, self.mask = enc["input_ids"], enc["attention_mask"]
        else:  # no captions at all (a caption-less corpus): nothing to encode
            self.ids = self.mask = torch.zeros((0, 1), dtype=torch.long)
        self.lengths = self.mask.sum(1)
        self.offsets = _cache_offsets(self.lengths, encoder.n_layers * encoder.hidden, cache_mb)
        self.cached: torch.Tensor | None = None  # (S, cached tokens, H) float16
        self.pooled = self._encode_all(batch)

    def _encode_all(self, batch: int) -> torch.Tensor:
        """Run the encoder over every text once: the pooled features (N, H), and the layers
        of the cached prefix into ``self.cached``."""
        n_cached, lengths = self.n_cached, self.lengths.tolist()
        tokens = sum(lengths[:n_cached])
        if tokens:
            shape = (self.encoder.n_layers, tokens, self.encoder.hidden)
            self.cached = torch.empty(shape, dtype=torch.float16)
        pooled = []
        for i in range(0, len(self), batch):
            lay = self._run(slice(i, i + batch))
            pooled.append(mean_pool(lay[-1], self.mask[i : i + batch].to(lay.device)).float().cpu())
            part = lay[:, : max(0, n_cached - i)].half().cpu()  # one copy off the device
            for k in range(part.shape[1]):
                start, n = int(self.offsets[i + k]), lengths[i + k]
                self.cached[:, start : start + n] = part[:, k, :n]
        return torch.cat(pooled) if pooled else torch.zeros(0, self.encoder.hidden)

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def n_cached(self) -> int:
        return int((self.offsets >= 0).sum())

    @property
    def cached_mb(self) -> int:
        """The cache's size, in MB rounded up."""
        return 0 if self.cached is None else -(-self.cached.numel() * 2 // 2**20)

    @torch.no_grad()
    def _run(self, sl) -> torch.Tensor:
        # no_grad, not inference_mode: uncached features are recomputed per batch and fed to
        # a trained decoder, and inference tensors cannot be saved for its backward pass
        ids, mask = self.ids[sl].to(self.device), self.mask[sl].to(self.device)
        return self.encoder(ids, mask)

    def layers(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, b, T', H) float on device and pad mask (b, T') True = padding, T' trimmed."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        mask = self.mask[idx]
        t = int(mask.sum(1).max())
        hit = self.offsets[idx] >= 0
        if self.cached is None or not bool(hit.any()):
            lay = self._run(idx)[:, :, :t].float()
        else:
            lay = torch.zeros(self.encoder.n_layers, len(idx), t, self.encoder.hidden)
            for k in hit.nonzero().flatten().tolist():
                start, n = int(self.offsets[idx[k]]), int(self.lengths[idx[k]])
                lay[:, k, :n] = self.cached[:, start : start + n]  # float16 -> float32
            lay = lay.to(self.device)
            if not bool(hit.all()):
                miss = (~hit).nonzero().flatten()
                lay[:, miss.to(self.device)] = self._run(idx[miss])[:, :, :t].float()
        return lay, (mask[:, :t] == 0).to(self.device)


def _cache_offsets(lengths: torch.Tensor, values_per_token: int, cache_mb: int) -> torch.Tensor:
    """Each text's first token in the cache, or -1: texts in order while the budget lasts
    (so the cached texts are a prefix)."""
    ends = torch.cumsum(lengths, 0)
    fits = ends * values_per_token * 2 <= cache_mb * 2**20  # float16
    return torch.where(fits, ends - lengths, torch.full_like(lengths, -1))


def memory_cache_mb(share: float = 0.25) -> int:
    """The default feature-cache budget: ``share`` of this machine's memory (its cgroup limit
    where that is lower), 1 GiB where neither can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        pass
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limits.append(int(Path(cgroup).read_text().strip()))
        except (OSError, ValueError):  # absent, or "max" (no limit)
            pass
    return int(min(limits) * share) >> 20 if limits else 1024
