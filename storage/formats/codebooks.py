"""Persistence of semantic IDs and the frozen quantizers (safetensors + JSON, no pickle).

codebooks/
  centroids.safetensors   {"centroids": float32 (k, d)}
  rqvae.safetensors       RQ-VAE state dict (absent in hkmeans/random modes)
  config.json             SemanticIDConfig + dims + codebook size + the quality report
semantic_ids.parquet      item_id, coarse, fine list<int32>, suffix, sid
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ace_core.config_io import from_dict, to_dict
from ace_core.ids.rqvae import RQVAE
from ace_core.ids.semantic_ids import SemanticIDConfig, SemanticIndexer
from ace_index.storage.formats.tables import (
    save_weights,
)


def save_indexer(indexer: SemanticIndexer, folder: str | os.PathLike) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(
        {"centroids": torch.from_numpy(np.ascontiguousarray(indexer.centroids))},
        folder / "centroids.safetensors",
    )
    if indexer.rqvae is not None:
        save_weights(
            {k: v.contiguous() for k, v in indexer.rqvae.state_dict().items()},
            folder / "rqvae.safetensors",
        )
    meta = {
        "config": to_dict(indexer.config),
        "dim": int(indexer.centroids.shape[1]),
        "codebook_size": indexer.codebook_size,
        "report": indexer.report,
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=2))


def load_indexer(folder: str | os.PathLike) -> SemanticIndexer:
    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    config = from_dict(SemanticIDConfig, meta["config"])
    centroids = load_file(str(folder / "centroids.safetensors"))["centroids"].numpy()
    model = None
    if (folder / "rqvae.safetensors").exists():
        model = RQVAE(meta["dim"], config.rqvae, meta["codebook_size"])
        model.load_state_dict(load_file(str(folder / "rqvae.safetensors")))
        model.eval()
    return SemanticIndexer(config, centroids, model, meta["codebook_size"], meta["report"])
