"""Orchestration figures (issue: Prefect flows). Prints markdown; not a test.

  .venv/bin/python bench/orchestration.py [--image-model ViT-B-32] [--seed 31]

On a default-size `ace sample-corpus`:
- orchestration overhead: `index_corpus` flow wall time (API already warm) / the sum of the
  same steps called directly without Prefect (fresh store and model cache for each);
- ephemeral API cold start: a trivial flow in a fresh PREFECT_HOME vs a warm one (subprocesses);
- incremental ingest of a batch 10% the size of the corpus vs the full index;
- re-index of the unchanged corpus as a fraction of the first index;
- recall on old items before vs after the ingest (forgetting) and on the new items.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_index.tasks import _env  # noqa: E402,F401

TRIVIAL = "from prefect import flow\n@flow\ndef f():\n    return 1\nf()\n"

SMOKE = ["--image-model", "ace-tiny-vit"]


def cold_start() -> tuple[float, float]:
    def once(home: str) -> float:
        env = {**os.environ, "PREFECT_HOME": home}
        env.pop("PREFECT_API_URL", None)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from ace_index.tasks import _env\n" + TRIVIAL],
            env=env,
            check=True,
            capture_output=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        return time.perf_counter() - t

    home = tempfile.mkdtemp(prefix="ace-prefect-cold-")
    return once(home), once(home)


def direct_steps(corpus: str, store: str, ic) -> dict[str, float]:
    """The index steps without Prefect (the tasks' own functions): {stage: seconds}."""
    import dataclasses

    from ace_core.media.discovery import discover
    from ace_core.media.embed_config import common_dim, embed_cache_key
    from ace_core.media.pipeline import embed_files
    from ace_index.storage.build.discovery_record import save_discovery
    from ace_index.storage.build.publish import publish_version
    from ace_index.storage.build.staging import stage_rebuild
    from ace_index.storage.formats.shards import load_shard_files, plan_shards, write_embed_shard
    from ace_index.storage.store import Store
    from ace_index.tasks import build, train
    from ace_index.tasks.embed import encoders_for

    times = {}
    t = time.perf_counter()
    found = discover(corpus)
    disc = save_discovery(found, Store(store).staging_dir / "discovery")
    key = embed_cache_key(ic.embed)
    cache = Store(store).embed_cache_dir(key)
    specs = plan_shards(found.files, ic.embed.shard_size, key, cache / "specs")
    outputs = []
    for spec in specs:
        files = load_shard_files(spec)
        enc = encoders_for(ic.embed, {f.modality for f in files})
        res = embed_files(files, enc, ic.embed.pipeline)
        outputs.append(
            dataclasses.asdict(write_embed_shard(res, cache, spec, common_dim(ic.embed)))
        )
    times["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    staged = stage_rebuild(store, str(disc), outputs)
    times["stage"] = time.perf_counter() - t
    t = time.perf_counter()
    ids = build.fit_ids.fn(str(staged), store, ic)
    times["ids"] = time.perf_counter() - t
    t = time.perf_counter()
    train.train_retriever.fn(store, str(staged), ic)
    times["train+eval"] = time.perf_counter() - t
    t = time.perf_counter()
    publish_version(
        store, staged, operation="full_rebuild", expected_parent=None, config=ic, ids_report=ids
    )
    times["publish"] = time.perf_counter() - t
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-model", default="ViT-B-32")
    ap.add_argument("--seed", type=int, default=31)
    args = ap.parse_args()
    from prefect import flow

    from ace_core.index_config import IndexConfig
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig
    from ace_core.synth import CorpusCounts, write_sample_corpus
    from ace_index.flows.index import index_corpus, ingest_batch
    from ace_index.tasks import embed as embed_tasks

    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-flows-"))
    write_sample_corpus(tmp / "corpus", seed=args.seed)
    write_sample_corpus(
        tmp / "batch", seed=args.seed + 1, counts=CorpusCounts(images=5, audio=2, videos=2)
    )  # 9 = 10% of 88
    cfg = IndexConfig(  # the random-weight encoders these figures were first measured with
        embed=EmbedConfig(
            image=ImageEncoderConfig(args.image_model, "random"),
            audio=AudioEncoderConfig(checkpoint="random"),
        )
    )

    cold, warm = cold_start()
    flow(lambda: 1)()  # warm this process's ephemeral API

    stages = direct_steps(str(tmp / "corpus"), str(tmp / "direct"), cfg)
    embed_tasks._encoder.cache_clear()  # the flow loads its models like the direct run did
    t = time.perf_counter()
    first = index_corpus(str(tmp / "corpus"), str(tmp / "store"), cfg)
    t_index = time.perf_counter() - t
    embed_tasks._encoder.cache_clear()  # every run pays its model loading, as a new process would
    t = time.perf_counter()
    ingest = ingest_batch(str(tmp / "batch"), str(tmp / "store"))
    t_ingest = time.perf_counter() - t
    embed_tasks._encoder.cache_clear()
    t = time.perf_counter()
    nightly = index_corpus(None, str(tmp / "store"), cfg)  # every source: corpus + batch
    t_nightly = time.perf_counter() - t
    embed_tasks._encoder.cache_clear()
    t = time.perf_counter()
    again = index_corpus(None, str(tmp / "store"), cfg)  # nothing changed since
    t_again = time.perf_counter() - t

    total = sum(stages.values())
    print(
        f"sample corpus seed {args.seed} ({first['items']['ok']} items), image model "
        f"{args.image_model}, CPU threads {os.cpu_count()}"
    )
    print("\n| stage (direct, no Prefect) | seconds |\n|---|---|")
    for k, v in stages.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| **sum** | {total:.1f} |")
    print("\n| figure | value | target |\n|---|---|---|")
    print(
        f"| index flow wall (warm API) / sum of stages | {t_index:.1f} / {total:.1f} = "
        f"{t_index / total:.2f} | <= 1.15 |"
    )
    print(
        f"| ephemeral API cold start (trivial flow, fresh PREFECT_HOME) | {cold:.1f} s "
        f"(warm home: {warm:.1f} s) | - |"
    )
    print(
        f"| ingest of 9 new items (10%) / full index | {t_ingest:.1f} / {t_index:.1f} = "
        f"{t_ingest / t_index:.2f} | <= 0.25 |"
    )
    print(
        f"| nightly re-index of both sources after the ingest / first index | {t_nightly:.1f} / "
        f"{t_index:.1f} = {t_nightly / t_index:.2f} (shards computed: "
        f"{nightly['shards_computed']}, removed: {nightly['id_diff']['removed']}) | - |"
    )
    print(
        f"| re-index with nothing changed / first index | {t_again:.1f} / {t_index:.1f} = "
        f"{t_again / t_index:.2f} (shards computed: {again['shards_computed']}, reused "
        f"{again['reused_from']}) | <= 0.3 |"
    )
    before = first["eval"]["generative"]
    sub = ingest["eval"].get("subsets", {})
    print("\n| generative retriever | R@1 | R@5 | MRR@10 |\n|---|---|---|---|")
    print(
        f"| old items, before ingest ({first['version']}) | {before['R@1']:.3f} | "
        f"{before['R@5']:.3f} | {before['MRR@10']:.3f} |"
    )
    for name in ("old_items", "new_items"):
        m = sub.get(name) or {}
        label = "old items, after ingest" if name == "old_items" else "new items, after ingest"
        print(
            f"| {label} ({ingest['version']}) | {m.get('R@1', 0):.3f} | {m.get('R@5', 0):.3f} | "
            f"{m.get('MRR@10', 0):.3f} |"
        )


if __name__ == "__main__":
    main()
