"""Persistence of the retrieval model of a version (safetensors + JSON, no pickle).

retriever/
  weights.safetensors   decoder.* (ID decoder) and dense.* (dense baseline projection)
  config.json           RetrieverConfig, Vocab, item dim, text encoder path and sha256
  tokenizer/            the text encoder's tokenizer files (save_pretrained)
The text encoder itself is frozen and referenced (default: the all-MiniLM-L6-v2 package);
its weights hash is checked on load. Items, embeddings and IDs come from the version's tables.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ace_core.config_io import from_dict, to_dict
from ace_core.media.discovery import sha256_file
from ace_core.retrieval.dense import DenseProjection
from ace_core.retrieval.fine_tune import InitState
from ace_core.retrieval.model import LEGACY_RETRIEVER, IDDecoder, RetrieverConfig, Vocab
from ace_core.retrieval.retrieval_model import RetrievalModel
from ace_core.retrieval.text_encoder import (
    build_text_encoder,
    load_tokenizer,
    runnable_precision,
)
from ace_index.storage.formats.tables import save_weights

logger = logging.getLogger(__name__)


def encoder_weights_file(path: str) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (Path(path) / name).exists():
            return Path(path) / name
    return None


def save_retriever(model: RetrievalModel, folder: str | os.PathLike, encoder_path: str) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"decoder.{k}": v.detach().cpu().contiguous() for k, v in model.decoder.state_dict().items()
    }
    tensors.update(
        {f"dense.{k}": v.detach().cpu().contiguous() for k, v in model.dense.state_dict().items()}
    )
    save_weights(tensors, folder / "weights.safetensors")
    weights = encoder_weights_file(encoder_path)
    meta = {
        "config": to_dict(model.config),
        "vocab": asdict(model.vocab),
        "item_dim": int(model.item_emb.shape[1]),
        "item_ids": model.item_ids,  # the items it was trained on (ingest: which are new)
        "encoder": {
            "hidden": model.encoder.hidden,
            "n_layers": model.encoder.n_layers,
            "path": model.config.encoder_path,
            "weights_sha256": sha256_file(weights) if weights else None,
        },
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=2))
    model.tokenizer.save_pretrained(str(folder / "tokenizer"))


def load_retriever(
    folder: str | os.PathLike,
    item_ids: list[str],
    item_emb: np.ndarray,
    id_tokens_raw: np.ndarray,
    *,
    device=None,
) -> RetrievalModel:
    """Rebuild the model from its folder plus the version's items/embeddings/IDs."""
    folder = Path(folder)
    if not (folder / "weights.safetensors").exists():
        raise FileNotFoundError(f"no retriever in {folder}")
    meta = json.loads((folder / "config.json").read_text())
    cfg = from_dict(RetrieverConfig, {**LEGACY_RETRIEVER, **meta["config"]})
    vocab = Vocab(**meta["vocab"])
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = replace(cfg, text_precision=runnable_precision(cfg.text_precision, device))
    encoder, _, path = build_text_encoder(cfg, device)
    _check_encoder(path, meta["encoder"]["weights_sha256"])
    tokenizer = load_tokenizer(str(folder / "tokenizer"), path)
    state = load_file(str(folder / "weights.safetensors"))
    decoder = IDDecoder(
        cfg,
        vocab,
        meta["encoder"]["hidden"],
        meta["encoder"]["n_layers"],
        meta["item_dim"],
        n_items=len(item_ids),
    )
    decoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("decoder.")})
    dense = DenseProjection(meta["encoder"]["hidden"], meta["item_dim"])
    dense.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("dense.")})
    return RetrievalModel(
        cfg,
        vocab,
        item_ids,
        np.asarray(item_emb, np.float32),
        vocab.encode(id_tokens_raw),
        encoder.eval().to(device),
        tokenizer,
        decoder.eval().to(device),
        dense.eval(),
        device,
    )


def load_retriever_state(folder: str | os.PathLike):
    """(decoder state, dense state, Vocab, item ids it was trained on) of a saved retriever,
    to fine-tune from."""
    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    state = load_file(str(folder / "weights.safetensors"))
    return InitState(
        decoder={k[8:]: v for k, v in state.items() if k.startswith("decoder.")},
        dense={k[6:]: v for k, v in state.items() if k.startswith("dense.")},
        vocab=Vocab(**meta["vocab"]),
        item_ids=set(meta.get("item_ids", [])),
        item_order=list(meta.get("item_ids", [])),
        text_precision={**LEGACY_RETRIEVER, **meta["config"]}["text_precision"],
    )


def _check_encoder(path: str, expected: str | None) -> None:
    weights = encoder_weights_file(path)
    if expected and weights and sha256_file(weights) != expected:
        logger.warning(
            "text encoder at %s differs from the one this retriever was trained "
            "with (weights sha256 mismatch); results may be poor",
            path,
        )
