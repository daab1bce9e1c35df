"""The embedding stage (a subflow shared by index and ingest) and `embed_corpus`:
discovery, decoding and embeddings only (written to the store's staging area)."""

from __future__ import annotations

import time

import pyarrow.compute as pc
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from ace_core.media.pipeline import EmbedConfig
from storage.discovery import load_discovery
from storage.shards import read_items, summarize_items
from tasks.embed import discover_corpus, embed_shard, plan_embed_shards, shard_outputs_present


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

    Shards are submitted to this subflow's task runner (one thread by default; see
    ``use_task_runner`` for Dask or Ray). Cached shards return at once. Being a subflow, its
    worker threads end with it, so the torch thread pools they started do not compete with the
    training that follows (measured: 2x slower epochs otherwise, see docs/BENCHMARKS.md).
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


def run_embedding(
    discovery: str,
    store: str,
    config: EmbedConfig,
    exclude_version: str | None = None,
    exclude_failed: bool = True,
) -> list[dict]:
    """Run the embedding subflow (looked up at call time, so ``use_task_runner`` applies)."""
    return embed_stage(discovery, store, config, exclude_version, exclude_failed)


def use_task_runner(runner) -> None:
    """Run embedding shards on ``runner`` (e.g. prefect_dask.DaskTaskRunner(address=...) or
    prefect_ray.RayTaskRunner(...)) in this process's embed, index and ingest flows."""
    global embed_stage
    embed_stage = embed_stage.with_options(task_runner=runner)


def use_dask(address: str | None = None, local_workers: int | None = None) -> None:
    """Embedding shards on a Dask cluster: the scheduler at ``address``, or a LocalCluster
    of ``local_workers`` worker processes started (and stopped) by each flow run. Every
    worker needs this package installed and the store and media at the same paths."""
    from prefect_dask import DaskTaskRunner

    if address:
        use_task_runner(DaskTaskRunner(address=address))
    else:
        use_task_runner(
            DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": local_workers,
                    "processes": True,
                    "threads_per_worker": 1,
                    "dashboard_address": None,
                }
            )
        )


@flow(name="embed-corpus")
def embed_corpus(corpus: str, store: str, config: EmbedConfig | None = None) -> dict:
    started = time.perf_counter()
    discovery = discover_corpus(corpus, store)
    outputs = run_embedding(discovery, store, config or EmbedConfig())
    found = load_discovery(discovery)
    items = read_items(outputs)
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
