"""Embedding tasks: discovery (of the store's sources or one folder), shard planning, one
task per shard (cached on content hashes)."""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from ace_core.media.discovery import discover, sniff_modality
from ace_core.media.embed_config import EmbedConfig, common_dim, embed_cache_key
from ace_core.media.modalities import SPACE_OF_MODALITY, kinds_sharing_spaces
from ace_core.media.pipeline import build_encoder, embed_files
from ace_index.storage.build.discovery_record import load_discovery, save_discovery
from ace_index.storage.build.staging import Removals, plan_removals
from ace_index.storage.formats.shards import (
    ShardSpec,
    finished_shard,
    load_shard_files,
    plan_shards,
    record_encoders,
    write_embed_shard,
)
from ace_index.storage.formats.version_data import known_item_ids
from ace_index.storage.store import StoreError, open_store, source_discovery
from ace_index.storage.store import sources as src
from ace_index.tasks._progress import Progress, stage

logger = logging.getLogger(__name__)
_BUILDING = threading.Lock()  # one build per model, also against the warm-up thread


@functools.lru_cache(maxsize=8)
def _encoder(config: EmbedConfig, modality: str):
    """Encoders are built once per process and config (models are large)."""
    space = SPACE_OF_MODALITY[modality]
    if space != modality:  # a kind that shares another's space (video) wraps its encoder
        return build_encoder(modality, config, shared=_encoder(config, space))
    return build_encoder(modality, config)


def encoders_for(config: EmbedConfig, modalities: set[str]) -> dict:
    wanted = kinds_sharing_spaces(set(modalities))
    with _BUILDING:
        return {m: _encoder(config, m) for m in sorted(wanted)}


def warm_up_encoders(config: EmbedConfig, corpus: str, sniff: int = 200) -> threading.Thread:
    """Build the encoders a corpus needs (the modalities of its first ``sniff`` files) in a
    background thread, so that loading the models overlaps the start of Prefect's API; the
    flow's shard tasks then find them built. A failure is left for the flow to report."""

    def build() -> None:
        try:
            encoders_for(config, _first_modalities(corpus, sniff))
        except Exception:  # noqa: BLE001 - the shard task builds again and reports it
            logger.debug("encoder warm-up failed", exc_info=True)

    thread = threading.Thread(target=build, name="encoder-warm-up", daemon=True)
    thread.start()
    return thread


def _first_modalities(corpus: str, limit: int) -> set[str]:
    found: set[str] = set()
    seen = 0
    for root, dirs, files in os.walk(corpus):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            try:
                modality = sniff_modality(os.path.join(root, name))
            except OSError:
                modality = None
            found |= {modality} if modality else set()
            seen += 1
            if seen >= limit:
                return found
    return found


def _require_media(found, where: str) -> None:
    """A walk that found no media file at all is an error naming the folder(s), before any
    work (and before any source is registered)."""
    if found.files:
        return
    skipped = (
        f"; {len(found.skipped)} other files skipped, e.g. {found.skipped[0][0]}: "
        f"{found.skipped[0][1]}"
        if found.skipped
        else ""
    )
    raise StoreError(f"no media files found in {where}{skipped}")


def _save(store: str, found, sources=()) -> str:
    stage(
        "discovered %d media files (%d skipped, %d duplicate paths, %d caption problems)",
        len(found.files),
        len(found.skipped),
        sum(map(len, found.duplicates.values())),
        len(found.caption_errors),
    )
    return str(save_discovery(found, open_store(store).staging_dir / "discovery", sources))


@task(name="discover-folder")
def discover_corpus(corpus: str, store: str) -> str:
    """Walk one folder (not registered as a source); the path of its discovery record."""
    return _save(store, discover(corpus))


@task(name="discover-sources")
def discover_sources(store: str, sources: list[src.Source]) -> tuple[str, Removals]:
    """Walk every source; the discovery record and what LATEST would lose by it."""
    found, missing = source_discovery.discover_sources(sources)
    if not missing:
        _require_media(found, ", ".join(s.location for s in sources))
    return _save(store, found, sources), plan_removals(store, found, sources, missing)


@task(name="discover-ingest-folder")
def discover_ingest_folder(store: str, match: src.SourceMatch, folder: str) -> str:
    """Walk a folder being ingested; paths relative to the source that holds it."""
    found = source_discovery.discover_folder(match, folder)
    _require_media(found, folder)
    return _save(store, found, [match.source])


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
        excluded = open_store(store).version(exclude_version)
        known = known_item_ids(excluded, ok_only=not exclude_failed)
        files = [f for f in files if f.item_id not in known]
    key = embed_cache_key(config)
    cache = open_store(store).embed_cache_dir(key)
    specs = plan_shards(files, config.shard_size, key, cache / "specs")
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
    cache = open_store(store).embed_cache_dir(embed_cache_key(config))
    done = finished_shard(cache, shard)
    if done is not None:
        return asdict(done)
    files = load_shard_files(shard)
    encoders = encoders_for(config, {f.modality for f in files})
    record_encoders(cache, encoders)
    progress = Progress(
        f"embedding {shard.name}", len(files), "items", f"ace-{open_store(store).key}-embedding"
    )
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
