"""Frozen text-encoder features of a list of texts, computed once.

Each text's features are a block of every encoder layer's outputs, (T, S, H) float16 at the
text's own token length T, or, with ``pooled_memory``, (1, S, H): each layer's outputs
mean-pooled over the text's tokens, so the decoder reads one memory token per layer; and the
last layer mean-pooled (H,), which the bridge and the dense baseline read. The blocks live in
memory, or in memory-mapped files of the store's feature store (storage.formats.text_features),
which computes each caption once per encoder and reuses it by content hash.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ace_core.retrieval.model import mean_pool
from ace_core.retrieval.text_encoder import TextEncoder


@dataclass(frozen=True)
class FeatureSpec:
    """How a text's features are computed: what the store keys them by beside the text."""

    max_tokens: int = 48  # longer texts are truncated
    pooled_memory: bool = False  # one mean-pooled token per layer instead of every token
    precision: str = "float32"  # the encoder's arithmetic (text_encoder.py), never "auto"

    def __post_init__(self):
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"features are float32 or bfloat16, not {self.precision!r}")

    @property
    def key(self) -> str:
        bf16 = "-bf16" if self.precision == "bfloat16" else ""
        return f"t{self.max_tokens}-{'pooled' if self.pooled_memory else 'tokens'}{bf16}"


def encode_texts(
    encoder: TextEncoder,
    tokenizer,
    texts: Sequence[str],
    spec: FeatureSpec,
    *,
    device,
    batch: int = 128,
) -> Iterator[tuple[np.ndarray, list[np.ndarray], np.ndarray]]:
    """Per batch: the positions in ``texts`` of the texts it holds, their blocks ((T_i, S, H)
    float16 each) and pooled last layers ((b, H) float32). Batches take the texts in order of
    length, so a batch pads little (the encoder's cost follows the longest text in it)."""
    check_precision(encoder, spec)
    device = torch.device(device)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for i in range(0, len(texts), batch):
        idx = order[i : i + batch]
        part = [texts[k] for k in idx]
        enc = tokenizer(
            part, padding=True, truncation=True, max_length=spec.max_tokens, return_tensors="pt"
        )
        mask = enc["attention_mask"]
        with torch.no_grad():
            lay = encoder(enc["input_ids"].to(device), mask.to(device)).float()  # (S, b, T, H)
        m = mask.to(lay.device)
        pooled = mean_pool(lay[-1], m).cpu().numpy()
        if spec.pooled_memory:
            per_layer = torch.stack([mean_pool(layer, m) for layer in lay], dim=1)  # (b, S, H)
            blocks = [b[None] for b in per_layer.half().cpu().numpy()]
        else:
            lay = lay.permute(1, 2, 0, 3).half().cpu().numpy()  # (b, T, S, H)
            blocks = [lay[k, : int(n)] for k, n in enumerate(mask.sum(1).tolist())]
        yield idx, blocks, pooled


def check_precision(encoder, spec: FeatureSpec) -> None:
    """Features are computed in the precision the encoder holds, never labelled otherwise."""
    precision = getattr(encoder, "precision", "float32")
    if precision != spec.precision:
        raise ValueError(
            f"the text encoder computes in {precision}, the features asked for are {spec.precision}"
        )


class TextFeatures:
    """Features of N texts: ``layers(rows)`` for the decoder, ``pooled`` (N, H) float32.

    ``parts``: arrays of blocks laid end to end, (tokens, S, H) float16 (memory-mapped files or
    in memory); text i is ``parts[part[i]][offset[i] : offset[i] + length[i]]``."""

    def __init__(self, parts, part, offset, length, pooled, *, device="cpu"):
        self.parts = list(parts)
        self.part = np.asarray(part, np.int64)
        self.offset = np.asarray(offset, np.int64)
        self.length = np.asarray(length, np.int64)
        self.pooled = torch.as_tensor(np.asarray(pooled, np.float32))
        self.device = torch.device(device)

    @classmethod
    def compute(
        cls,
        encoder: TextEncoder,
        tokenizer,
        texts: Sequence[str],
        *,
        device,
        spec: FeatureSpec | None = None,
        batch: int = 128,
    ) -> TextFeatures:
        """The features of ``texts``, computed now and held in memory (``spec`` by default:
        token blocks in the encoder's precision)."""
        spec = spec or FeatureSpec(precision=getattr(encoder, "precision", "float32"))
        blocks: list = [None] * len(texts)
        pooled = np.zeros((len(texts), encoder.hidden), np.float32)
        for idx, b, p in encode_texts(encoder, tokenizer, texts, spec, device=device, batch=batch):
            for k, block in zip(idx.tolist(), b):
                blocks[k] = block
            pooled[idx] = p
        return cls.of_blocks(blocks, [pooled], encoder, device)

    @classmethod
    def of_blocks(cls, blocks: list[np.ndarray], pooled: list[np.ndarray], encoder, device):
        length = np.array([len(b) for b in blocks], np.int64)
        shape = (0, encoder.n_layers, encoder.hidden)
        flat = np.concatenate(blocks) if blocks else np.zeros(shape, np.float16)
        offset = np.cumsum(length) - length
        pooled_all = np.concatenate(pooled) if pooled else np.zeros((0, encoder.hidden))
        return cls([flat], np.zeros(len(blocks)), offset, length, pooled_all, device=device)

    def __len__(self) -> int:
        return len(self.length)

    def layers(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, b, T', H) float on the device and the pad mask (b, T') True = padding, T' the
        longest of the b texts."""
        idx = np.asarray(torch.as_tensor(idx, dtype=torch.long).cpu().numpy()).reshape(-1)
        lengths = self.length[idx]
        t = int(lengths.max()) if len(idx) else 1
        S, H = self.parts[0].shape[1:] if self.parts else (1, 1)
        out = np.zeros((len(idx), t, S, H), np.float16)
        for k, i in enumerate(idx.tolist()):
            start = self.offset[i]
            out[k, : lengths[k]] = self.parts[self.part[i]][start : start + lengths[k]]
        lay = torch.from_numpy(out).permute(2, 0, 1, 3).float().to(self.device)
        pad = torch.arange(t)[None] >= torch.from_numpy(lengths)[:, None]
        return lay, pad.to(self.device)
