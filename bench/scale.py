"""Cost growth end to end, and the cost of a 1% ingest (issue: scale). Prints markdown; not a test.

  .venv/bin/python bench/scale.py [--sizes 1000 10000 100000] [--max-train-steps 20000]
                                  [--ingest-at 10000] [--work /tmp/ace-scale]

Each size runs in its own process (so peak RSS is that size's): the real ``index_corpus`` flow
(embedded Prefect API warmed first) over a synthetic image corpus (captions made distinct per
item, see ``distinct_captions``), embedded with the shipped
tiny aligned encoders so that embedding does not dominate; the retriever at its default size
with the given step budget. Each stage's wall time and peak RSS are measured around the
flow's own task calls (the peak is reset before each stage). Then query q/s through the
published version's default path (256 held-out captions, k=10, beam 10).

At ``--ingest-at`` items, a batch of 1% new items is then ingested (``ingest_batch`` flow) and
its wall time compared with the full index's; old-item R@1 is measured on the same 1000
held-out test captions of old items before and after the ingest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY = ROOT / "models" / "tiny"
from bench.timing import reset_peak_rss, status_kb  # noqa: E402

SEEDS = {1000: 101, 10000: 102, 100000: 103}  # corpus seeds (other sizes: 100 + size)

SMOKE = ["--sizes", "100", "--max-train-steps", "10", "--ingest-at", "100", "--work", "scale"]


def corpus(work: Path, n: int, seed: int, name: str) -> Path:
    """The synthetic image corpus of n items (reused when complete: captions.jsonl is last),
    with captions made distinct per item (see ``distinct_captions``)."""
    from ace_core.synth import CorpusCounts, write_sample_corpus

    out = work / name
    if not (out / "captions.jsonl").exists():
        write_sample_corpus(out, seed=seed, counts=CorpusCounts(images=n, audio=0, videos=0))
    distinct_captions(out, name)
    return out


def distinct_captions(folder: Path, tag: str) -> None:
    """The generator has about 2,000 distinguishable scenes and a few templates, so beyond a
    few thousand items most caption texts repeat across items, and the protocol drops every
    training caption equal to a held-out one: a 100k corpus would train on almost no captions.
    Each caption gets its item's name appended ("..., frame c100000-img_04821"), so that every
    size trains on about 3 distinct captions per item, as a real corpus does. (Recall then
    measures memorising names, not understanding scenes: the cost is what this bench is for.)"""
    path = folder / "captions.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    if recs and recs[0]["captions"][0].endswith(Path(recs[0]["path"]).stem):
        return  # done already
    lines = []
    for rec in recs:
        name = f"{tag}-{Path(rec['path']).stem}"
        rec["captions"] = [f"{c}, frame {name}" for c in rec["captions"]]
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")


def index_config(max_steps: int | None):
    from dataclasses import replace

    from ace_core.index_config import IndexConfig
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig
    from ace_core.retrieval.training import TrainConfig

    train = TrainConfig(max_steps=max_steps)
    return IndexConfig(
        embed=EmbedConfig(
            image=ImageEncoderConfig("ace-tiny-clip", str(TINY / "ace-tiny-clip.safetensors")),
            audio=AudioEncoderConfig("ace-tiny-clap", str(TINY / "ace-tiny-clap.safetensors")),
        ),
        train=replace(train, dense=replace(train.dense, max_steps=max_steps)),
    )


class StageMeter:
    """Wall seconds and peak RSS of each stage, measured around the flows' task calls."""

    def __init__(self):
        self.rows: dict[str, dict] = {}

    def wrap(self, module, attr: str, name: str) -> None:
        setattr(module, attr, self.timed(getattr(module, attr), name))

    def wrap_factory(self, module, attr: str, name: str) -> None:
        """``module.attr`` returns a callable (a flow with options): time what it returns."""
        factory = getattr(module, attr)
        setattr(module, attr, lambda *a, **k: self.timed(factory(*a, **k), name))

    def timed(self, original, name: str):
        def timed(*args, **kwargs):
            reset_peak_rss()
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                row = self.rows.setdefault(name, {"seconds": 0.0, "peak_rss_mb": 0.0})
                row["seconds"] += time.perf_counter() - started
                row["peak_rss_mb"] = max(row["peak_rss_mb"], status_kb("VmHWM") / 1024)

        return timed

    def take(self) -> dict:
        rows, self.rows = self.rows, {}
        return rows


def instrument() -> StageMeter:
    import ace_index.flows.index as fi
    from ace_index.tasks import build as tb
    from ace_index.tasks import train as tt

    meter = StageMeter()
    for module, attr, name in (
        (fi, "discover_sources", "discover"),
        (fi, "discover_ingest_folder", "discover"),
        (tb, "stage_rebuild", "stage"),
        (tb, "stage_ingest", "stage"),
        (fi, "keep_or_fit_ids", "ids"),  # a full rebuild keeps or refits IDs here
        (tb, "assign_ids", "ids"),
        (tt, "train_retriever", "train+eval"),
        (tb, "publish_version", "publish"),
    ):
        meter.wrap(module, attr, name)
    meter.wrap_factory(fi, "embed_on", "embed")
    return meter


def query_rate(store: str, texts: list[str]) -> tuple[str, float]:
    from ace_index.query.loaded import load_version
    from ace_index.query.search import search_version

    vm = load_version(store)
    search_version(vm, texts[:8], 10)  # warm-up
    started = time.perf_counter()
    answer = search_version(vm, texts, 10)
    return answer.path, len(texts) / (time.perf_counter() - started)


def held_out(store: str, version: str, limit: int, exclude: set[str] = frozenset()):
    """(caption, item id) test pairs of a version's split (never trained on), seeded sample."""
    import numpy as np

    from ace_core.retrieval.evaluation import split_queries
    from ace_index.storage.formats.version_data import training_data
    from ace_index.storage.store import Store

    data = training_data(Store(store).version(version))
    pairs = [
        (text, data.item_ids[row])
        for text, row in split_queries(data.item_ids, data.captions).test
        if data.item_ids[row] not in exclude
    ]
    keep = np.random.default_rng(7).permutation(len(pairs))[:limit]
    return [pairs[i] for i in sorted(keep)]


def recall_at_1(store: str, version: str, pairs) -> float:
    from ace_index.query.loaded import load_version
    from ace_index.query.search import search_version

    vm = load_version(store, version)
    answer = search_version(vm, [t for t, _ in pairs], 10, path="captions")
    top = [row[0]["item_id"] if row else None for row in answer.results]
    return sum(t == i for t, (_, i) in zip(top, pairs)) / len(pairs)


def warm_api() -> None:
    """Start the embedded Prefect API with a trivial flow, so no stage pays its start-up."""
    from prefect import flow

    flow(lambda: 1, name="warm")()


def child(n: int, work: Path, max_steps: int | None, ingest: bool) -> dict:
    from ace_index.flows.index import index_corpus, ingest_batch

    src = corpus(work, n, SEEDS.get(n, 100 + n), f"c{n}")
    store = str(work / f"store{n}-{int(time.time())}")
    warm_api()
    meter = instrument()
    started = time.perf_counter()
    report = index_corpus(str(src), store, index_config(max_steps))
    out = {"items": n, "index_seconds": time.perf_counter() - started, "stages": meter.take()}
    out["training"] = report["eval"].get("training", {})
    out["test"] = {k: report["eval"].get(k) for k in ("generative", "dense", "queries")}
    texts = [t for t, _ in held_out(store, report["version"], 256)]
    out["query_path"], out["query_qps"] = query_rate(store, texts)
    if ingest:
        out["ingest"] = ingest_child(work, n, store, report, meter, ingest_batch)
    out["store_bytes"] = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())
    return out


def ingest_child(work: Path, n: int, store: str, parent: dict, meter, ingest_batch) -> dict:
    batch = corpus(work, n // 100, 100_000 + n, f"b{n}")
    started = time.perf_counter()
    report = ingest_batch(str(batch), store)
    seconds = time.perf_counter() - started
    pairs = held_out(store, parent["version"], 1000)
    return {
        "items": n // 100,
        "seconds": seconds,
        "stages": meter.take(),
        "old_r1_before": recall_at_1(store, parent["version"], pairs),
        "old_r1_after": recall_at_1(store, report["version"], pairs),
        "subsets": report["eval"].get("subsets"),
        "training": report["eval"].get("training", {}),
    }


def ingest_only(work: Path, n: int, parent_store: Path) -> None:
    """The 1% ingest again, into a copy of an index this script made earlier (rolled back to
    its first version; the full index's figures are read from work/result-N.json)."""
    import shutil

    from ace_index.flows.index import ingest_batch

    store = work / f"ingest-into-{parent_store.name}-{int(time.time())}"
    shutil.copytree(parent_store, store, symlinks=True)
    first, *later = sorted(p.name for p in (store / "versions").iterdir())
    for name in later:
        shutil.rmtree(store / "versions" / name)
    (store / "LATEST").write_text(first + "\n")
    sources = json.loads((store / "sources.json").read_text())
    sources["sources"] = sources["sources"][:1]  # the batch's source came with the ingest
    (store / "sources.json").write_text(json.dumps(sources, indent=2))
    warm_api()
    res = json.loads((work / f"result-{n}.json").read_text())
    meter = instrument()
    res["ingest"] = ingest_child(work, n, str(store), {"version": first}, meter, ingest_batch)
    print_tables([res])


STAGES = ("discover", "embed", "stage", "ids", "train+eval", "publish")


def print_tables(results: list[dict]) -> None:
    print("\n| items | " + " | ".join(f"{s} s" for s in STAGES) + " | index wall s |")
    print("|---" * (len(STAGES) + 2) + "|")
    for r in results:
        cells = [f"{r['stages'].get(s, {}).get('seconds', 0):.1f}" for s in STAGES]
        print(f"| {r['items']} | " + " | ".join(cells) + f" | {r['index_seconds']:.1f} |")
    print("\n| items | " + " | ".join(f"{s} peak RSS MB" for s in STAGES) + " |")
    print("|---" * (len(STAGES) + 1) + "|")
    for r in results:
        cells = [f"{r['stages'].get(s, {}).get('peak_rss_mb', 0):.0f}" for s in STAGES]
        print(f"| {r['items']} | " + " | ".join(cells) + " |")
    print(
        "\n| items | train steps | examples/s | fit phases s | test R@1 gen / dense | "
        "query path | q/s | store MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        t, g, d = r["training"], r["test"]["generative"] or {}, r["test"]["dense"] or {}
        phases = ", ".join(f"{k} {v:.0f}" for k, v in t.get("phase_seconds", {}).items())
        print(
            f"| {r['items']} | {t.get('steps')} | {t.get('examples_per_second')} | {phases} | "
            f"{g.get('R@1')} / {d.get('R@1')} | {r['query_path']} | {r['query_qps']:.1f} | "
            f"{r['store_bytes'] / 2**20:.0f} |"
        )
    for r in results:
        if "ingest" in r:
            i = r["ingest"]
            print(
                f"\ningest of {i['items']} items into {r['items']}: {i['seconds']:.1f} s = "
                f"{i['seconds'] / r['index_seconds']:.3f} of the full index "
                f"({r['index_seconds']:.1f} s); old-item R@1 on 1000 held-out captions "
                f"{i['old_r1_before']:.3f} -> {i['old_r1_after']:.3f}; stages "
                + ", ".join(f"{k} {v['seconds']:.1f}" for k, v in i["stages"].items())
                + f"; subsets {json.dumps(i['subsets'])}; steps {i['training'].get('steps')}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--max-train-steps", type=int, default=20_000, help="0: no cap")
    ap.add_argument("--ingest-at", type=int, default=10000)
    ap.add_argument("--work", default="/tmp/ace-scale")
    ap.add_argument(
        "--ingest-into", default=None, metavar="STORE",
        help="only re-measure the 1%% ingest, into a copy of this --ingest-at index",
    )  # fmt: skip
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    steps = args.max_train_steps or None
    if args.ingest_into:
        ingest_only(work, args.ingest_at, Path(args.ingest_into))
        return
    if args.child is not None:
        res = child(args.child, work, steps, args.child == args.ingest_at)
        print("RESULT " + json.dumps(res))
        return
    results = []
    for n in args.sizes:
        argv = [
            sys.executable, __file__, "--child", str(n), "--work", str(work),
            "--max-train-steps", str(args.max_train_steps), "--ingest-at", str(args.ingest_at),
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"size {n} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(line[-1][len("RESULT ") :]))
        (work / f"result-{n}.json").write_text(json.dumps(results[-1], indent=2))
        print(f"{n} items: index {results[-1]['index_seconds']:.0f} s", flush=True)
    print(f"\nmax train steps {args.max_train_steps}")
    print_tables(results)


if __name__ == "__main__":
    main()
