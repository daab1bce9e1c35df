"""Wall-clock of data-parallel training on this machine (issue 40 part 5): the same fit at the
same examples per item with 1 and with 2 DDP workers (gloo on CPU), one after the other, on a
corpus's stored embeddings and caption features. Not a test.

    .venv/bin/python -m bench train_workers --corpus /work/data/w1k [--examples-per-item 16]
        [--workers 1 2]

Per worker count: the generative training's wall-clock (workers' start-up included), its
steps (a step of N workers is N batches), and pure generation's R@1 on the held-out captions
(captions path, beam 10) with its 95% bootstrap interval. With 2 cores and torch's threads
split between the workers, 2 workers show the engine's overhead on one machine, not a speed-up;
the speed-up is for machines with cores (or GPUs) to spare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.media.discovery import discover  # noqa: E402
from ace_core.retrieval.dense import DenseTrainConfig  # noqa: E402
from ace_core.retrieval.fit import fit_retrieval  # noqa: E402
from ace_core.retrieval.generation import generative_search  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder, default_encoder_path  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from ace_index.storage.formats.text_features import feature_source  # noqa: E402

SMOKE = ["--corpus", "{corpus}", "--examples-per-item", "2"]


def one_fit(folder: Path, workers: int, examples_per_item: float, encoder) -> dict:
    saved = np.load(folder / "embeddings.npz")
    ids, x = saved["ids"].tolist(), saved["x"]
    indexer, sids = fit_semantic_ids(ids, x, SemanticIDConfig())
    train = TrainConfig(
        examples_per_item=examples_per_item,
        patience=10**6,  # the whole budget, in both
        workers=workers,
        dense=DenseTrainConfig(epochs=1),
    )
    with tempfile.TemporaryDirectory() as work:
        fit = fit_retrieval(
            ids,
            x,
            sids,
            indexer,
            discover(folder).captions,
            train=train,
            encoder=encoder,
            features=feature_source(folder, default_encoder_path()),
            workdir=work,
        )
    report = fit.generative_report
    hits = test_hits(fit)
    boots = hits[np.random.default_rng(0).integers(len(hits), size=(2000, len(hits)))]
    lo, hi = np.percentile(boots.mean(axis=1), [2.5, 97.5])
    return {
        "workers": workers,
        "seconds": fit.seconds["generative_training"],
        "steps": report.steps,
        "r1": hits.mean(),
        "interval": (lo, hi),
    }


def test_hits(fit) -> np.ndarray:
    texts, gold = [t for t, _ in fit.split.test], [g for _, g in fit.split.test]
    model = fit.model
    found = generative_search(model.decoder, model.features(texts), model.trie, 10, 10)
    return np.array([bool(f) and f[0][0] == g for f, g in zip(found, gold)], float)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--examples-per-item", type=float, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    flush_denormals()
    encoder = build_text_encoder(RetrieverConfig())
    rows = []
    for w in args.workers:
        rows.append(one_fit(Path(args.corpus), w, args.examples_per_item, encoder))
        print(f"{w} worker(s): {rows[-1]}", flush=True)
    base = rows[0]["seconds"]
    print("\n| workers | training s | steps | x 1 worker's time | captions path R@1 (test) |")
    print("|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["interval"]
        print(
            f"| {r['workers']} | {r['seconds']:.1f} | {r['steps']:,} | "
            f"{r['seconds'] / base:.2f}x | {r['r1']:.3f} [{lo:.3f}, {hi:.3f}] |"
        )


if __name__ == "__main__":
    main()
