"""Search service figures (issue: search service and web page). Prints markdown; not a test.

  .venv/bin/python bench/serve.py [--sizes 1000 100000] [--clients 1 8 32] [--seconds 20]

For each corpus size a synthetic version (n random semantic IDs, 512-d embeddings, the default
retriever with untrained weights: throughput does not depend on training; a caption per item,
the tiny encoders' text towers and fusion weights, so every component of the fused path
runs) is served by the real app (`flows/serve/app.py`) with uvicorn on loopback; 1, 8 and 32
client threads send queries for a bounded time; p50/p99 latency and queries/s are reported
for each ``--paths`` (auto: the fused default; generative: pure generation, both generative
paths; dense: the caption baseline), with the served process's RSS. The clients
run in a separate process (threads of their own would share the server's GIL). The per-call
cost of the CLI (`ace query` on a small real store, one process per query) is measured once.
``--fit``: the version's fusion weights: ``typical`` (one beam search, the default),
``balanced-1k`` (the balanced 1k unseen fit: the zero-shot beams, one per item space) or
``every`` (all five components weighted: every beam search runs, the costliest fit).
Each version answers one search before it is served, as ``ace serve`` does.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_index.flows import serve as _serve  # noqa: E402,F401
from ace_index.tasks import _env  # noqa: E402,F401
from bench.timing import median_time, run_clients  # noqa: E402

FITTED = {
    "weights": {"captions": 0.1, "zero_shot": 0.0, "dense": 0.3, "text_tower": 0.1, "bm25": 0.5},
    "uncaptioned": {"text_tower": 0.9},
}
FITS = {
    "typical": FITTED,
    "balanced-1k": {  # docs/BENCHMARKS.md, "Every ID a target as often"
        "weights": {
            "captions": 0.0,
            "zero_shot": 0.1,
            "dense": 0.3,
            "text_tower": 0.1,
            "bm25": 0.5,
        },
        "uncaptioned": {"text_tower": 0.9},
    },
    "every": {  # the captions beam and a zero-shot beam per item space all run
        "weights": {
            "captions": 0.2,
            "zero_shot": 0.2,
            "dense": 0.2,
            "text_tower": 0.2,
            "bm25": 0.2,
        },
        "uncaptioned": {"text_tower": 0.5},
    },
}

SMOKE = ["--sizes", "100", "--clients", "1", "--seconds", "1", "--paths", "auto"]


def synthetic_version(n: int):
    """A VersionModel over n synthetic IDs (the decoder and dense head untrained)."""
    import torch

    from ace_core.retrieval.dense import DenseProjection
    from ace_core.retrieval.fused_search import training_keywords
    from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab
    from ace_core.retrieval.retrieval_model import RetrievalModel
    from ace_core.retrieval.text_encoder import build_text_encoder
    from ace_index.query.loaded import LoadedVersion
    from bench import retrieval as bench_retrieval  # its synthetic IDs, same as there

    torch.manual_seed(0)
    enc, tok, _ = build_text_encoder(RetrieverConfig())
    tokens, k, K = bench_retrieval.synthetic_ids(n)
    vocab = Vocab(k, 3, K, int(tokens[:, -1].max()) + 1)
    emb = np.random.default_rng(1).standard_normal((n, 512)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = [f"{i:064x}" for i in range(n)]
    decoder = IDDecoder(RetrieverConfig(), vocab, enc.hidden, enc.n_layers, 512, n).eval()
    model = RetrievalModel(RetrieverConfig(), vocab, ids, emb, vocab.encode(tokens), enc.eval(),
                           tok, decoder, DenseProjection(enc.hidden, 512).eval())  # fmt: skip
    _ = model.trie  # built before serving
    mods = ("image", "audio", "video")
    items = {i: {"item_id": i, "source_id": "synthetic", "path": f"{n}/{i[:8]}.png",
                 "modality": mods[j % 3]} for j, i in enumerate(ids)}  # fmt: skip
    sids = {i: ".".join(map(str, t)) for i, t in zip(ids, tokens)}
    words = np.array(["red", "blue", "circle", "square", "loud", "tone", "moving", "bird", "rain",
                      "slow", "green", "quiet", "left", "top", "fast", "small"])  # fmt: skip
    pick = np.random.default_rng(2).integers(len(words), size=(n, 5))
    captions = {i: [" ".join(words[pick[j]])] for j, i in enumerate(ids)}
    vm = LoadedVersion("v000001", model, items, sids, {}, captions,
                       encoders={m: {"text_sha256": "tiny", "weights_source": "tiny"}
                                 for m in mods})  # fmt: skip
    vm.cache.text_spaces = tiny_spaces([items[i]["modality"] for i in ids], model.id_tokens)
    vm.cache.captioned = np.arange(n) % 4 != 0  # a quarter without captions
    train = [(captions[i][0], j) for j, i in enumerate(ids) if j % 4 != 0]
    vm.cache.training_keywords = training_keywords([items[i]["path"] for i in ids], train)
    vm.fusion = FITTED  # a typical fit on the three-protocol corpora (docs/BENCHMARKS.md)
    return vm


def tiny_spaces(modalities, id_tokens):
    """The tiny encoders' text towers over the items' spaces (models/tiny)."""
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig
    from ace_core.media.pipeline import build_encoder
    from ace_core.retrieval.zero_shot import text_spaces

    tiny = ROOT / "models" / "tiny"
    cfg = EmbedConfig(
        image=ImageEncoderConfig("ace-tiny-clip", str(tiny / "ace-tiny-clip.safetensors")),
        audio=AudioEncoderConfig("ace-tiny-clap", str(tiny / "ace-tiny-clap.safetensors")),
    )
    towers = {m: build_encoder(m, cfg).embed_text for m in ("image", "audio")}
    return text_spaces(modalities, id_tokens, towers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(vm):
    import uvicorn

    from ace_index.flows.serve.app import create_app
    from ace_index.flows.serve.holder import VersionHolder
    from ace_index.query.search import warm_up

    holder = VersionHolder("unused")
    warm_up(vm)  # as VersionHolder.swap_in does before a version is served
    holder.current, holder.start = vm, lambda: None  # a fixed version: no store, no watcher
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app("unused", holder=holder), port=port,
                                           log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}"


def load(url: str, clients: int, seconds: float, path: str) -> dict:
    """The load, from another process (client threads would share the server's GIL)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(url, clients, seconds, path, queue))
    proc.start()
    result = queue.get(timeout=seconds + 300)
    proc.join()
    return result


def _load_process(url, clients, seconds, path, queue) -> None:
    queue.put(_client_loops(url, clients, seconds, path))


def _client_loops(url: str, clients: int, seconds: float, path: str) -> dict:
    import httpx

    latencies, stop = [], threading.Event()
    words = ["red", "blue", "circle", "square", "loud", "tone", "moving", "bird", "rain"]

    def loop(c_id: int):
        rng = np.random.default_rng(c_id)
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                q = " ".join(rng.choice(words, 4))
                t = time.perf_counter()
                r = c.get("/api/search", params={"q": q, "k": 10, "path": path})
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

    took = run_clients(loop, clients, seconds, stop)
    lat = sorted(latencies)
    return {
        "qps": len(lat) / took,
        "p50": statistics.median(lat) * 1000,
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000,
    }


def cli_cost() -> float:
    """Seconds of one `ace query` (a new process: imports, model load, one search)."""
    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-serve-"))
    ace = [sys.executable, "-m", "ace_index.flows.cli"]
    subprocess.run([*ace, "sample-corpus", str(tmp / "c"), "--images", "6", "--audio", "0",
                    "--videos", "0"], check=True, capture_output=True)  # fmt: skip
    cfg = tmp / "fast.json"
    cfg.write_text('{"train": {"epochs": 2}, "embed": {"image": {"model": "ace-tiny-vit", '
                   '"pretrained": "random"}, "audio": {"checkpoint": "random"}}}')  # fmt: skip
    subprocess.run([*ace, "index", str(tmp / "c"), "--store", str(tmp / "s"), "--config",
                    str(cfg)], check=True, capture_output=True)  # fmt: skip
    query = [*ace, "query", "a red circle", "--store", str(tmp / "s"), "-k", "3"]
    return median_time(lambda: subprocess.run(query, check=True, capture_output=True), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--paths", nargs="+", default=["auto", "generative", "dense"])
    ap.add_argument("--no-cli", action="store_true", help="skip the ace query per-call cost")
    ap.add_argument("--fit", choices=sorted(FITS), default="typical",
                    help="the served version's fusion weights (see the docstring)")  # fmt: skip
    args = ap.parse_args()
    print(f"CPU threads {os.cpu_count()}; each row runs for {args.seconds:.0f} s\n")
    print("| IDs | mode | clients | q/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for n in args.sizes:
        vm = synthetic_version(n)
        vm.fusion = FITS[args.fit]
        server, url = start(vm)
        for mode in args.paths:
            for c in args.clients:
                r = load(url, c, args.seconds, mode)
                print(
                    f"| {n:,} | {mode} | {c} | {r['qps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} |"
                )
        server.should_exit = True
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {n:,} | peak RSS of the serving process so far: {rss:.0f} MB | | | | |")
    if not args.no_cli:
        print(f"\n`ace query` per call (new process, small store): {cli_cost():.1f} s")


if __name__ == "__main__":
    main()
