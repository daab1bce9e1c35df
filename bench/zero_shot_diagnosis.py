"""What limits the zero-shot path of a caption-less version (issue 23 part 2). Not a test.

  .venv/bin/python bench/zero_shot_diagnosis.py --corpus DIR [--lr-decay | --no-lr-decay]
                                                [--epochs 20] [--max-steps N]

Fits a caption-less version of a corpus (DIR/embeddings.npz kept by bench/fused_protocols.py,
the tiny encoders), as the caption-less protocol does, then asks the trained decoder:

- zero-shot R@1 on 1,000 of the corpus's captions (a seeded sample), the towers' exact R@1,
  and how often the two agree on the top 1;
- per item space: does an item's own embedding decode to the item (query by example, top 1)?
- per item space: does a point near an item (moved along the difference of two random items
  of its space by a random step up to 0.5, re-normalised) decode to the item exact search
  finds there?
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.cpu_share import flush_denormals  # noqa: E402
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids  # noqa: E402
from ace_core.retrieval.fit import fit_retrieval  # noqa: E402
from ace_core.retrieval.generation import search_by_embedding  # noqa: E402
from ace_core.retrieval.model import RetrieverConfig  # noqa: E402
from ace_core.retrieval.text_encoder import build_text_encoder  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from ace_core.retrieval.zero_shot import (  # noqa: E402
    text_spaces,
    tower_dense_search,
    tower_queries,
    zero_shot_search,
)
from bench.fused_protocols import embedded, sampled  # noqa: E402

SMOKE = ["--corpus", "{corpus}", "--epochs", "1", "--max-steps", "5"]


def nearby_points(x: np.ndarray, rows: np.ndarray, n: int, seed: int):
    """(points near ``n`` random items of ``rows``, the row exact search finds for each)."""
    rng = np.random.default_rng(seed)
    src, a, b = (rng.choice(rows, n) for _ in range(3))
    p = x[src] + rng.uniform(0, 0.5, (n, 1)) * (x[a] - x[b])
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p.astype(np.float32), rows[np.argmax(p @ x[rows].T, axis=1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--lr-decay", action=argparse.BooleanOptionalAction,
                    default=TrainConfig.lr_decay)  # fmt: skip
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=20_000)
    args = ap.parse_args()
    flush_denormals()
    ids, x, modalities, captions, towers = embedded(Path(args.corpus), keep=True)
    indexer, sids = fit_semantic_ids(ids, x, SemanticIDConfig())
    train = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, lr_decay=args.lr_decay)
    t0 = time.perf_counter()
    fit = fit_retrieval(ids, x, sids, indexer, {}, config=RetrieverConfig(),
                        train=train, encoder=build_text_encoder(RetrieverConfig()),
                        dense=False)  # fmt: skip
    r = fit.generative_report
    print(f"fit {time.perf_counter() - t0:.0f} s, {r.steps} steps, lr_decay {args.lr_decay}, "
          f"last loss {r.history[-1]['loss']:.3f}")  # fmt: skip
    model, dim = fit.model, x.shape[1]
    spaces = text_spaces(modalities, model.id_tokens, towers, model.trie_of)
    pairs = [(c, n) for n, i in enumerate(ids) if i in captions for c in captions[i].captions]
    queries = sampled(pairs, 1000, 0)
    texts, gold = [q for q, _ in queries], np.array([g for _, g in queries])
    q = tower_queries(spaces, texts, dim)
    zero = np.array([h[0][0] for h in zero_shot_search(model.decoder, spaces, texts, dim, 10,
                                                        10, queries=q)])  # fmt: skip
    exact = np.array([h[0][0] for h in tower_dense_search(spaces, texts, model.item_emb, 1, q)])
    print(f"zero-shot R@1 {np.mean(zero == gold):.3f}, towers R@1 {np.mean(exact == gold):.3f}, "
          f"the same top 1 {np.mean(zero == exact):.3f} ({len(texts)} queries)")  # fmt: skip
    for name, space in spaces.items():
        own = search_by_embedding(model.decoder, x[space.rows], space.trie, 10, 1)
        own_r1 = np.mean([space.rows[h[0][0]] == r for h, r in zip(own, space.rows)])
        points, found = nearby_points(x, space.rows, 1000, 1)
        near = search_by_embedding(model.decoder, points, space.trie, 10, 1)
        agree = np.mean([space.rows[h[0][0]] == f for h, f in zip(near, found)])
        print(f"{name}: {len(space.rows)} items; own embedding -> the item {own_r1:.3f}; "
              f"a nearby point -> exact search's item {agree:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
