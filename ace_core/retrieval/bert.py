"""A BERT encoder (all-MiniLM-L6-v2 and other plain BERT checkpoints) and its fast tokenizer
without importing transformers' modelling code, which alone took 1.5-2 s of every `ace
query`. Same parameter names and outputs as ``transformers.BertModel`` in eval mode (held by
a parity test); weights come from ``model.safetensors`` (no pickle). Checkpoints of another
architecture keep loading through transformers (``is_plain_bert``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def is_plain_bert(path: str | Path) -> bool:
    """A BERT checkpoint this module reproduces: absolute positions, a known activation,
    safetensors weights and a fast tokenizer file."""
    path = Path(path)
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        cfg.get("model_type") == "bert"
        and cfg.get("position_embedding_type", "absolute") == "absolute"
        and cfg.get("hidden_act") in ACTIVATIONS
        and (path / "model.safetensors").is_file()
        and (path / "tokenizer.json").is_file()
    )


class Embeddings(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(
            cfg["vocab_size"], h, padding_idx=cfg.get("pad_token_id", 0)
        )
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(cfg.get("type_vocab_size", 2), h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)[None]
        return self.LayerNorm(x + self.token_type_embeddings.weight[0])


class SelfAttention(nn.Module):
    def __init__(self, h: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)


class DenseNorm(nn.Module):
    """A projection, then the residual and LayerNorm (BERT's "output" blocks)."""

    def __init__(self, d_in: int, h: int, eps: float):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(d_in, h), nn.LayerNorm(h, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, h: int, eps: float):
        super().__init__()
        self.self, self.output = SelfAttention(h), DenseNorm(h, h, eps)


class Intermediate(nn.Module):
    def __init__(self, h: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(h, inner)


class Layer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-12)
        self.heads, self.act = cfg["num_attention_heads"], ACTIVATIONS[cfg["hidden_act"]]
        self.attention = Attention(h, eps)
        self.intermediate = Intermediate(h, cfg["intermediate_size"])
        self.output = DenseNorm(cfg["intermediate_size"], h, eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x (B, T, H); keep (B, 1, 1, T) True where a key is a real token."""
        B, T, H = x.shape
        sa = self.attention.self

        def split(t):
            return t.view(B, T, self.heads, H // self.heads).transpose(1, 2)

        q, k, v = split(sa.query(x)), split(sa.key(x)), split(sa.value(x))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = self.attention.output(a.transpose(1, 2).reshape(B, T, H), x)
        return self.output(self.act(self.intermediate.dense(x)), x)


class Encoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg["num_hidden_layers"]))


class Bert(nn.Module):
    """``BertModel`` without its pooler: every layer's hidden states."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.config = cfg
        self.embeddings, self.encoder = Embeddings(cfg), Encoder(cfg)

    @classmethod
    def from_folder(cls, path: str | Path) -> Bert:
        from safetensors.torch import load_file

        path = Path(path)
        model = cls(json.loads((path / "config.json").read_text()))
        state = load_file(str(path / "model.safetensors"))
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
        state.pop("embeddings.position_ids", None)
        model.load_state_dict(state)  # strict: a missing or unknown tensor is an error
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(S, B, T, H): the outputs of the S layers (embeddings excluded)."""
        keep = attention_mask.bool()[:, None, None, :]
        x, out = self.embeddings(input_ids), []
        for layer in self.encoder.layer:
            x = layer(x, keep)
            out.append(x)
        return torch.stack(out)


class FastTokenizer:
    """A checkpoint's ``tokenizer.json`` through the tokenizers library, called as a
    transformers tokenizer is here: padded to the longest text, truncated, torch tensors."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        config = _json_or_empty(self.path / "tokenizer_config.json")
        pad = config.get("pad_token", "[PAD]")
        self.pad_token = pad if isinstance(pad, str) else pad.get("content", "[PAD]")
        self.pad_id = self.tokenizer.token_to_id(self.pad_token) or 0

    @staticmethod
    def usable(path: str | Path) -> bool:
        return (Path(path) / "tokenizer.json").is_file()

    def __call__(
        self, texts, *, padding=True, truncation=True, max_length=None, return_tensors="pt"
    ) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encoded]
        if truncation and max_length:  # [CLS] the first tokens [SEP], as transformers cuts
            ids = [_truncated(row, max_length) for row in ids]
        width = max((len(i) for i in ids), default=0)
        out_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for n, row in enumerate(ids):
            out_ids[n, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[n, : len(row)] = 1
        return {"input_ids": out_ids, "attention_mask": mask}

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            if (self.path / name).is_file():
                shutil.copyfile(self.path / name, folder / name)


def _truncated(ids: list[int], max_length: int) -> list[int]:
    return ids if len(ids) <= max_length else ids[: max_length - 1] + ids[-1:]


def _json_or_empty(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
