"""Embedding tasks: discovery, shard planning, one task per shard (cached), summary."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from tqdm.auto import tqdm

from ace_core.config import config_hash, from_dict
from ace_core.media import discover
from ace_core.pipeline import EmbedConfig, build_encoder, common_dim, embed_files
from storage.discovery import load_discovery, save_discovery
from storage.shards import (
    ShardSpec,
    finished_shard,
    load_shard_files,
    plan_shards,
    record_encoders,
    write_embed_shard,
)
from storage.store import Store
from storage.versions import known_item_ids


@functools.lru_cache(maxsize=4)
def _encoders(config_json: str, modalities: tuple[str, ...]) -> dict:
    """Encoders are built once per process and config (models are large)."""
    config = from_dict(EmbedConfig, json.loads(config_json))
    out: dict = {}
    if "image" in modalities or "video" in modalities:
        out["image"] = build_encoder("image", config)
        out["video"] = build_encoder("video", config, image=out["image"])
    if "audio" in modalities:
        out["audio"] = build_encoder("audio", config)
    return out


def encoders_for(config_json: str, modalities: set[str]) -> dict:
    wanted = set(modalities)
    if wanted & {"image", "video"}:
        wanted |= {"image", "video"}  # video reuses the image encoder
    return _encoders(config_json, tuple(sorted(wanted)))


@task(name="discover-corpus")
def discover_corpus(corpus: str, store: str) -> str:
    """Walk the corpus; returns the path of the discovery record under staging/."""
    found = discover(corpus)
    return str(save_discovery(found, Store(store).staging_dir / "discovery"))


@task(name="plan-shards")
def plan_embed_shards(
    discovery_path: str, store: str, config_json: str, exclude_version: str | None = None
) -> list[dict]:
    """Shard specs (paths + keys); files already in ``exclude_version`` (indexed or failed
    there) are left out."""
    config = from_dict(EmbedConfig, json.loads(config_json))
    files = load_discovery(discovery_path).files
    if exclude_version:
        known = known_item_ids(Store(store).version_dir(exclude_version))
        files = [f for f in files if f.item_id not in known]
    cache = Store(store).embed_cache_dir(config_hash(config))
    specs = plan_shards(files, config.shard_size, config_hash(config), cache / "specs")
    return [asdict(s) for s in specs]


@task(
    name="embed-shard",
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
    result_serializer="json",
)
def embed_shard(spec: dict, store: str, config_json: str) -> dict:
    """Embed one shard (keyed by content hashes) into the store's embedding cache."""
    shard = ShardSpec(**spec)
    config = from_dict(EmbedConfig, json.loads(config_json))
    cache = Store(store).embed_cache_dir(config_hash(config))
    done = finished_shard(cache, shard)
    if done is not None:
        return asdict(done)
    files = load_shard_files(shard)
    encoders = encoders_for(config_json, {f.modality for f in files})
    record_encoders(cache, encoders)
    bar = tqdm(
        total=len(files),
        desc=f"embed {shard.name}",
        unit="item",
        file=sys.stderr,
        disable=None,
        leave=False,
    )
    results = embed_files(files, encoders, config.pipeline, on_result=lambda _: bar.update())
    try:
        out = write_embed_shard(results, cache, shard, common_dim(config))
    finally:
        bar.close()
    return asdict(out)


def shard_outputs_present(outputs: list[dict]) -> bool:
    return all(
        Path(o["items_path"]).exists() and Path(o["embeddings_path"]).exists() for o in outputs
    )
