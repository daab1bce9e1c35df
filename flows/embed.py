"""The embedding stage (a subflow shared by index and ingest) and `embed_corpus`:
discovery, decoding and embeddings only (written to the store's staging area)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow.compute as pc
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from ace_core.media.embed_config import EmbedConfig
from ace_index.storage.build.discovery_record import load_discovery
from ace_index.storage.formats.shards import read_shard_items, summarize_items
from ace_index.tasks.embed import (
    discover_corpus,
    embed_shard,
    plan_embed_shards,
    shard_outputs_present,
)


@flow(name="embed-stage", task_runner=ThreadPoolTaskRunner(max_workers=1))
def embed_stage(
    discovery: str,
    store: str,
    config: EmbedConfig,
    exclude_version: str | None = None,
    exclude_failed: bool = True,
) -> list[dict]:
    """Embed the files of a discovery record (less those ``exclude_version`` has, see
    ``plan_embed_shards``): the shard outputs.

    Shards are submitted to this subflow's task runner (one thread by default; callers pick
    another with ``embed_on``: Dask, or any Prefect task runner through ``with_options``).
    Cached shards return at once. Being a subflow, its worker threads end with it, so the
    torch thread pools they started do not compete with the training that follows (measured:
    2x slower epochs otherwise, see docs/BENCHMARKS.md).
    """
    specs = plan_embed_shards(discovery, store, config, exclude_version, exclude_failed)
    futures = [embed_shard.submit(spec, store, config) for spec in specs]
    # a cache hit replays the stored result: mark it as not computed in this run
    outputs = [
        {**f.result(), "computed": f.result()["computed"] and f.state.name != "Cached"}
        for f in futures
    ]
    if not shard_outputs_present(outputs):  # cache says done but files were removed
        outputs = [embed_shard.with_options(refresh_cache=True)(s, store, config) for s in specs]
    return outputs


@dataclass(frozen=True)
class ShardRunner:
    """Where the embedding shards run: one thread of this process (the default), the Dask
    scheduler at ``dask_address``, or ``dask_workers`` local Dask worker processes started
    (and stopped) by each flow run. Every Dask worker needs this package installed and the
    store and media at the same paths."""

    dask_address: str | None = None  # tcp://host:8786
    dask_workers: int | None = None  # local worker processes

    def task_runner(self):
        """The Prefect task runner for ``embed_stage.with_options(task_runner=...)``."""
        if not (self.dask_address or self.dask_workers):
            return ThreadPoolTaskRunner(max_workers=1)
        from prefect_dask import DaskTaskRunner

        if self.dask_address:
            return DaskTaskRunner(address=self.dask_address)
        cluster = {
            "n_workers": self.dask_workers,
            "processes": True,
            "threads_per_worker": 1,
            "dashboard_address": None,
            "preload": ["ace_index.flows.dask_worker"],  # workers ignore SIGINT: the parent
            #   ends them (a terminal's Ctrl-C reaches the whole process group)
        }
        return DaskTaskRunner(cluster_kwargs=cluster)


def embed_on(runner: ShardRunner | None):
    """The embedding subflow with its shards on ``runner`` (None: this process)."""
    return embed_stage.with_options(task_runner=(runner or ShardRunner()).task_runner())


@flow(name="embed-corpus")
def embed_corpus(
    corpus: str, store: str, config: EmbedConfig | None = None, runner: ShardRunner | None = None
) -> dict:
    started = time.perf_counter()
    discovery = discover_corpus(corpus, store)
    outputs = embed_on(runner)(discovery, store, config or EmbedConfig())
    found = load_discovery(discovery)
    items = read_shard_items(outputs)
    report = summarize_items(items)
    failed = items.filter(pc.equal(items["status"], "failed"))
    report["failed_items"] = failed.select(["item_id", "path", "modality", "error"]).to_pylist()
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
