"""The effective configuration of an index: every component's config, nested.

Built once (the CLI, or ``IndexConfig()`` in Python), passed typed through flows and tasks, and
serialised in one place (``config_io.to_dict``) into the manifest of every version.
"""

from __future__ import annotations

from dataclasses import dataclass

from ace_core.ids.semantic_ids import SemanticIDConfig
from ace_core.media.embed_config import EmbedConfig
from ace_core.retrieval.fine_tune import IngestConfig
from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.training import TrainConfig


@dataclass(frozen=True)
class IndexConfig:
    embed: EmbedConfig = EmbedConfig()  # decoding and encoders
    ids: SemanticIDConfig = SemanticIDConfig()  # K-Means + RQ-VAE semantic IDs
    retriever: RetrieverConfig = RetrieverConfig()  # the ID decoder and its text encoder
    train: TrainConfig = TrainConfig()  # training of a full rebuild (and the dense baseline)
    ingest: IngestConfig = IngestConfig()  # fine-tuning of an incremental ingest
    ablations: bool = False  # also train the ablation models (no coarse, hkmeans, no fusion,
    #                          random IDs)
