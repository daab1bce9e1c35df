"""What decides an embedding: the encoders' settings and the pipeline's, and the widths they
give. The modality registry (modalities.py) and the pipeline (pipeline.py) both read these."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ace_core.config_io import config_hash, to_dict
from ace_core.errors import AceInputError
from ace_core.media.audio_encoder import audio_embed_dim
from ace_core.media.discovery import sha256_file
from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig, VideoConfig
from ace_core.offline import hub_offline


@dataclass(frozen=True)
class PipelineConfig:
    batch_size: int = 32  # items per encoder call (per modality)
    workers: int = 2  # decoding threads
    prefetch_batches: int = 2  # how many batches of decoded items may wait ahead of the model
    max_pixels: int = 89_478_485  # decompression-bomb limit for images
    jpeg_draft: bool = True  # decode large JPEGs at a reduced DCT scale, no smaller than the
    #                          image model's input side (much faster; see decode_image)
    video: VideoConfig = VideoConfig()


@dataclass(frozen=True)
class EmbedConfig:
    """Everything that decides an embedding: part of every shard's cache key."""

    image: ImageEncoderConfig = ImageEncoderConfig()
    audio: AudioEncoderConfig = AudioEncoderConfig()
    pipeline: PipelineConfig = PipelineConfig()
    shard_size: int = 2000  # files per shard (the unit of work, caching and memory)


def embed_cache_key(config: EmbedConfig) -> str:
    """The embedding cache's key: the settings' hash, with a local weights file named by its
    bytes' sha256 rather than its path, so a moved or copied weights file keeps its cache and
    a file replaced at the same path does not. Tags, "default" and "random" hash as written."""
    settings = to_dict(config)
    settings["image"]["pretrained"] = weights_identity(config.image.pretrained)
    settings["audio"]["checkpoint"] = weights_identity(config.audio.checkpoint)
    return config_hash(settings)


def weights_identity(weights: str | None) -> str | None:
    """``weights`` as given, or "sha256:<hex>" of the file where it names a local file."""
    if not weights or not os.path.isfile(weights):
        return weights
    st = os.stat(weights)
    return "sha256:" + _file_sha256(str(Path(weights).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Cached per (path, size, mtime): every shard task asks for the key."""
    return sha256_file(path)


def image_embed_dim(config: ImageEncoderConfig) -> int:
    """The open_clip model's embedding width, read from its config (no model is built)."""
    hub_offline()
    import open_clip

    from ace_core.media.encoders import _register_shipped_configs

    _register_shipped_configs()
    cfg = open_clip.get_model_config(config.model)
    if cfg is None:
        raise AceInputError(f"unknown open_clip model {config.model!r}")
    return int(cfg["embed_dim"])


def common_dim(config: EmbedConfig) -> int:
    """The store's embedding width: the largest encoder width (smaller ones are zero-padded)."""
    return max(image_embed_dim(config.image), audio_embed_dim(config.audio))
