"""The cost of one training step at each corpus size, at the same batch (issue 40 part 1):
the product's step (``train_steps.step_loss`` and its optimisers) on a scenes-world corpus's
own items, IDs and stored caption features. Not a test.

    .venv/bin/python bench/step_cost.py --corpus /work/data/w1k /work/data/w10k /work/data/w100k
        [--steps 60] [--rounds 3]

Each corpus needs its embeddings (``embeddings.npz``) and caption features
(``text-features/``), which bench/fused_protocols.py --corpus keeps beside it. Per corpus:
the IDs are fit (as a build fits them), the decoder built at the default size, and the
median ms of a caption step and of an indexing step taken over ``--steps`` steps (after 5 of
warm-up), ``--rounds`` times in turn across the corpora (paired: the machine's drift hits
every size alike), with this process's peak resident memory after each corpus.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.retrieval._torch import autocast  # noqa: E402
from ace_core.retrieval.evaluation import split_queries  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.retrieval_model import (  # noqa: E402
    RetrievalModel,
    build_vocab,
    new_decoder,
    new_dense,
)
from ace_core.retrieval.text_encoder import build_text_encoder, default_encoder_path  # noqa: E402
from ace_core.retrieval.train_steps import Optimizer, StepTargets, step_loss  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from ace_index.storage.formats.text_features import feature_source  # noqa: E402

SMOKE = ["--corpus", "{corpus}", "--steps", "2", "--rounds", "1"]


class Corpus:
    """One corpus's model, stored training features and step targets."""

    def __init__(self, folder: Path, encoder, negatives: int | None = TrainConfig.bridge_negatives):
        saved = np.load(folder / "embeddings.npz")
        ids, x = saved["ids"].tolist(), saved["x"]
        from ace_core.media.discovery import discover

        captions = discover(folder).captions
        indexer, sids = fit_semantic_ids(ids, x, SemanticIDConfig())
        enc, tok, _ = encoder
        config = RetrieverConfig()
        vocab = build_vocab(sids, indexer)
        decoder = new_decoder(config, vocab, enc, x.shape[1], indexer, len(ids))
        self.model = RetrievalModel(
            config,
            vocab,
            ids,
            x,
            vocab.encode(sids.tokens()),
            enc,
            tok,
            decoder,
            new_dense(config, enc, x.shape[1]),
        )
        split = split_queries(ids, captions, seed=0)
        self.feats = feature_source(folder, default_encoder_path())(
            [t for t, _ in split.train], self.model
        )
        items = np.array([n for _, n in split.train])
        self.t = StepTargets.of(decoder, x, self.model.id_tokens, items, self.model.trie, "cpu")
        self.cfg = TrainConfig(bridge_negatives=negatives)
        self.opt = Optimizer(decoder, self.cfg)
        self.gen = torch.Generator().manual_seed(0)
        self.n_items, self.name = len(ids), folder.name

    def step_ms(self, kind: str, steps: int, precision: str, warm_up: int = 5) -> float:
        decoder, times = self.model.decoder, []
        decoder.train()
        n = len(self.t.cap_items) if kind == "cap" else self.n_items
        for s in range(warm_up + steps):
            b = torch.randint(0, n, (self.cfg.batch_size,), generator=self.gen)
            start = time.perf_counter()
            with autocast(torch.device("cpu"), precision):
                loss = step_loss(decoder, kind, b, self.feats, self.t, self.cfg, "cpu")
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if s >= warm_up:
                times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", nargs="+", required=True, help="corpus folders, small first")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", nargs="+", default=["float32"],
                    choices=["float32", "bfloat16"], help="the step's autocast (each in turn)")
    ap.add_argument("--bridge-negatives", type=int, default=TrainConfig.bridge_negatives,
                    help="train.bridge_negatives (0: every item)")
    args = ap.parse_args()
    flush_denormals()
    encoder = build_text_encoder(RetrieverConfig())
    corpora = []
    for folder in args.corpus:
        corpora.append(Corpus(Path(folder), encoder, args.bridge_negatives or None))
        print(
            f"{folder}: {corpora[-1].n_items} items, {len(corpora[-1].feats)} training "
            f"captions; peak memory so far {peak_rss_mb():.0f} MB",
            flush=True,
        )
    runs: dict[tuple[str, str, str], list[float]] = {}
    for r in range(args.rounds):
        for c in corpora:
            for p in args.precision:
                for kind in ("cap", "item"):
                    runs.setdefault((c.name, p, kind), []).append(c.step_ms(kind, args.steps, p))
        print(
            f"round {r + 1}: "
            + ", ".join(f"{k[0]} {k[1]} {k[2]} {v[-1]:.1f} ms" for k, v in runs.items()),
            flush=True,
        )
    base = (corpora[0].name, args.precision[0], "cap")
    print("\n| corpus | items | precision | caption step ms | indexing step ms | caption step /"
          " first row |\n|---|---|---|---|---|---|")  # fmt: skip
    for c in corpora:
        for p in args.precision:
            cap = statistics.median(runs[(c.name, p, "cap")])
            item = statistics.median(runs[(c.name, p, "item")])
            ratio = cap / statistics.median(runs[base])
            print(f"| {c.name} | {c.n_items:,} | {p} | {cap:.1f} | {item:.1f} | {ratio:.2f}x |")
    print(f"\npeak resident memory: {peak_rss_mb():.0f} MB (every corpus loaded)")


if __name__ == "__main__":
    main()
