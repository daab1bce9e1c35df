"""`embed_corpus`: discovery, decoding and embeddings only (written to the store's staging)."""

from __future__ import annotations

import json
import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from ace_core.config import to_dict
from ace_core.pipeline import EmbedConfig
from storage.discovery import load_discovery
from storage.shards import read_items, summarize_items
from tasks.embed import discover_corpus, embed_shard, plan_embed_shards, shard_outputs_present


@flow(name="embed-stage", task_runner=ThreadPoolTaskRunner(max_workers=1))
def embed_stage(
    corpus: str, store: str, config: dict, exclude_version: str | None = None
) -> tuple[str, list[dict]]:
    """Subflow shared by the embed, index and ingest flows: (discovery path, shard outputs).

    Shards are submitted to this subflow's task runner (one thread by default; see
    ``use_task_runner`` for Dask or Ray). Cached shards return at once. Being a subflow, its
    worker threads end with it, so the torch thread pools they started do not compete with the
    training that follows (measured: 2x slower epochs otherwise, see docs/BENCHMARKS.md).
    """
    config_json = json.dumps(config, sort_keys=True)
    discovery = discover_corpus(corpus, store)
    specs = plan_embed_shards(discovery, store, config_json, exclude_version)
    futures = [embed_shard.submit(spec, store, config_json) for spec in specs]
    # a cache hit replays the stored result: mark it as not computed in this run
    outputs = [
        {**f.result(), "computed": f.result()["computed"] and f.state.name != "Cached"}
        for f in futures
    ]
    if not shard_outputs_present(outputs):  # cache says done but files were removed
        outputs = [
            embed_shard.with_options(refresh_cache=True)(s, store, config_json) for s in specs
        ]
    return discovery, outputs


def run_embedding(
    corpus: str, store: str, config: EmbedConfig, exclude_version: str | None = None
) -> tuple[str, list[dict]]:
    """Run the embedding subflow (looked up at call time, so ``use_task_runner`` applies)."""
    return embed_stage(corpus, store, to_dict(config), exclude_version)


def use_task_runner(runner) -> None:
    """Run embedding shards on ``runner`` (e.g. prefect_dask.DaskTaskRunner(address=...) or
    prefect_ray.RayTaskRunner(...)) in this process's embed, index and ingest flows."""
    global embed_stage
    embed_stage = embed_stage.with_options(task_runner=runner)


@flow(name="embed-corpus")
def embed_corpus(corpus: str, store: str, config: dict | None = None) -> dict:
    started = time.perf_counter()
    cfg = EmbedConfig() if config is None else _embed_config(config)
    discovery_path, outputs = run_embedding(corpus, store, cfg)
    found = load_discovery(discovery_path)
    report = summarize_items(read_items(outputs))
    seconds = time.perf_counter() - started
    report.update(
        skipped=len(found.skipped),
        duplicates=sum(len(v) for v in found.duplicates.values()),
        caption_errors=found.caption_errors,
        shards=len(outputs),
        shards_computed=sum(o["computed"] for o in outputs),
        embedded=sum(o["ok"] + o["failed"] for o in outputs if o["computed"]),
        seconds=round(seconds, 3),
        items_per_s=round(report["items"] / seconds, 2) if seconds > 0 else None,
        staging=[o["embeddings_path"] for o in outputs],
    )
    return report


def _embed_config(config: dict) -> EmbedConfig:
    from ace_core.config import from_dict

    return from_dict(EmbedConfig, config)
