"""Embedding tasks: discovery (of the store's sources or one folder), shard planning, one
task per shard (cached on content hashes)."""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from ace_core.config_io import config_hash
from ace_core.media.discovery import discover
from ace_core.media.pipeline import EmbedConfig, build_encoder, common_dim, embed_files
from storage import sources as src
from storage.discovery import load_discovery, save_discovery
from storage.shards import (
    ShardSpec,
    finished_shard,
    load_shard_files,
    plan_shards,
    record_encoders,
    write_embed_shard,
)
from storage.staging import Removals, plan_removals
from storage.store import Store
from storage.version_data import known_item_ids
from tasks._progress import Progress, stage


@functools.lru_cache(maxsize=4)
def _encoders(config: EmbedConfig, modalities: tuple[str, ...]) -> dict:
    """Encoders are built once per process and config (models are large)."""
    out: dict = {}
    if "image" in modalities or "video" in modalities:
        out["image"] = build_encoder("image", config)
        out["video"] = build_encoder("video", config, image=out["image"])
    if "audio" in modalities:
        out["audio"] = build_encoder("audio", config)
    return out


def encoders_for(config: EmbedConfig, modalities: set[str]) -> dict:
    wanted = set(modalities)
    if wanted & {"image", "video"}:
        wanted |= {"image", "video"}  # video reuses the image encoder
    return _encoders(config, tuple(sorted(wanted)))


def _save(store: str, found) -> str:
    stage(
        "discovered %d media files (%d skipped, %d duplicate paths, %d caption problems)",
        len(found.files), len(found.skipped), sum(map(len, found.duplicates.values())),
        len(found.caption_errors),
    )  # fmt: skip
    return str(save_discovery(found, Store(store).staging_dir / "discovery"))


@task(name="discover-folder")
def discover_corpus(corpus: str, store: str) -> str:
    """Walk one folder (not registered as a source); the path of its discovery record."""
    return _save(store, discover(corpus))


@task(name="discover-sources")
def discover_sources(store: str, sources: list[src.Source]) -> tuple[str, Removals]:
    """Walk every source; the discovery record and what LATEST would lose by it."""
    found, missing = src.discover_sources(sources)
    return _save(store, found), plan_removals(store, found, sources, missing)


@task(name="discover-ingest-folder")
def discover_ingest_folder(store: str, match: src.SourceMatch, folder: str) -> str:
    """Walk a folder being ingested; paths relative to the source that holds it."""
    return _save(store, src.discover_folder(match, folder))


@task(name="plan-shards")
def plan_embed_shards(
    discovery_path: str,
    store: str,
    config: EmbedConfig,
    exclude_version: str | None = None,
    exclude_failed: bool = True,
) -> list[dict]:
    """Shard specs (paths + keys); files already in ``exclude_version`` are left out (its ok
    items, and its failed ones too unless ``exclude_failed`` is False)."""
    files = load_discovery(discovery_path).files
    if exclude_version:
        known = known_item_ids(Store(store).version(exclude_version), ok_only=not exclude_failed)
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
def embed_shard(spec: dict, store: str, config: EmbedConfig) -> dict:
    """Embed one shard (keyed by content hashes) into the store's embedding cache."""
    shard = ShardSpec(**spec)
    cache = Store(store).embed_cache_dir(config_hash(config))
    done = finished_shard(cache, shard)
    if done is not None:
        return asdict(done)
    files = load_shard_files(shard)
    encoders = encoders_for(config, {f.modality for f in files})
    record_encoders(cache, encoders)
    progress = Progress(f"embedding {shard.name}", len(files), "items",
                        f"ace-{Store(store).key}-embedding")  # fmt: skip
    results = embed_files(files, encoders, config.pipeline, on_result=lambda _: progress.update())
    try:
        out = write_embed_shard(results, cache, shard, common_dim(config))
    finally:
        progress.close()
    return asdict(out)


def shard_outputs_present(outputs: list[dict]) -> bool:
    return all(
        Path(o["items_path"]).exists() and Path(o["embeddings_path"]).exists() for o in outputs
    )
