"""The effective configuration of an index: every component's config, nested."""

from __future__ import annotations

from dataclasses import dataclass

from ace_core.pipeline import EmbedConfig
from ace_core.retriever import RetrieverConfig
from ace_core.semantic_ids import SemanticIDConfig
from ace_core.training import TrainConfig


@dataclass(frozen=True)
class IndexConfig:
    embed: EmbedConfig = EmbedConfig()
    ids: SemanticIDConfig = SemanticIDConfig()
    retriever: RetrieverConfig = RetrieverConfig()
    train: TrainConfig = TrainConfig()
    ablations: bool = (
        False  # also train the ablation models (no coarse, hkmeans, no fusion, random)
    )
    ingest_epochs: int = 12  # fine-tuning epochs of an incremental ingest
    ingest_lr_scale: float = 0.3  # fine-tuning learning rate = train.lr * this (less forgetting)
    replay_ratio: float = 2.0  # old caption pairs replayed per new pair during an ingest
