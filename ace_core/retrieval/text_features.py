"""Frozen text-encoder features of a list of texts, computed once and cached within a budget."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ace_core.retrieval.model import TextEncoder, mean_pool


class TextFeatures:
    """Frozen-encoder features of a list of texts: all layers (S, N, T, H) and pooled (N, H)."""

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
        n, t = self.ids.shape
        size_mb = encoder.n_layers * n * t * encoder.hidden * 2 / 2**20
        self.cached: torch.Tensor | None = None
        pooled, layers = [], []
        for i in range(0, n, batch):
            lay = self._run(slice(i, i + batch))
            pooled.append(mean_pool(lay[-1], self.mask[i : i + batch].to(lay.device)).float().cpu())
            if size_mb <= cache_mb:
                layers.append(lay.half().cpu())
        self.pooled = torch.cat(pooled) if pooled else torch.zeros(0, encoder.hidden)
        if size_mb <= cache_mb and layers:
            self.cached = torch.cat(layers, dim=1)

    def __len__(self) -> int:
        return self.ids.shape[0]

    @torch.no_grad()
    def _run(self, sl) -> torch.Tensor:
        # no_grad, not inference_mode: uncached features are recomputed per batch and fed to
        # a trained decoder, and inference tensors cannot be saved for its backward pass
        ids, mask = self.ids[sl].to(self.device), self.mask[sl].to(self.device)
        return self.encoder(ids, mask)

    def layers(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, b, T', H) float on device and pad mask (b, T') True = padding, T' trimmed."""
        mask = self.mask[idx]
        t = int(mask.sum(1).max())
        if self.cached is not None:
            lay = self.cached[:, idx, :t].to(self.device).float()
        else:
            lay = self._run(idx)[:, :, :t].float()
        return lay, (mask[:, :t] == 0).to(self.device)
