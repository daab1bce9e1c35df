"""The fusion of items without training captions, checked on real held-out items (issue 40).
Not a test.

  .venv/bin/python -m bench uncaptioned_fusion --corpus DIR [fused_protocols' arguments]

A build fits the weights of its candidates without training captions on its validation
queries, each scored a second time as if its item had none (``blinded``, in
ace_core.retrieval.fusion): a build has no query of an item it never saw a caption of. This
bench asks what real queries of such items would choose instead. It takes the unseen
protocol's fit of bench/fused_protocols.py (train seed ``--train-seeds``' first; run that bench
first with ``--keep-checkpoints`` and the same arguments, and this one resumes the finished fit
without training where the IDs fit the same again: at 1k and 10k, not 100k). It puts a third
of the held-out items' queries in place of the blinded half (``held-val``), and scores every
weighting on the other two thirds (``held-test``) and on the captioned items' test queries:

- the build's fit (blinded), as served;
- the uncaptioned weighting fit on held-val: the towers, the captions beam and the
  item-memory beam on the simplex in 0.1 steps, each at every scale of the build's grid
  (the captioned weights kept), and the towers alone at a scale;
- the captioned weights refit against it in turn (twice);
- the fit without the generative components, blinded and on held-val;
- candidates from the dense sides and BM25 only (the beams score a candidate but add none):
  the build's fit, and the fit without generation (the candidates the protocol bench's
  refit without generation has).

Each row prints R@1 and MRR@10 on both query sets, over at most ``--max-queries`` each.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.retrieval import fused_search  # noqa: E402
from ace_core.retrieval.evaluation import scored_sample  # noqa: E402
from ace_core.retrieval.fusion import (  # noqa: E402
    COMPONENTS,
    GENERATIVE,
    UNCAPTIONED_SCALES,
    Candidates,
    DenseSide,
    candidates,
    fit_fusion,
    reciprocal_ranks,
    uncaptioned_grid,
    weight_grid,
    weight_vector,
)
from bench.fused_protocols import (  # noqa: E402
    all_queries,
    corpus_data,
    parser,
    sampled,
    start,
    trained,
)

SMOKE = ["--corpus", "{corpus}", "--epochs", "1", "--examples-per-item", "0",
         "--max-queries", "40"]  # fmt: skip
BEAM_MIX = ("captions", "zero_shot", "text_tower")


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    if not args.corpus:
        sys.exit("--corpus DIR: the corpus of a kept bench/fused_protocols.py unseen fit")
    enc, seed = start(args), args.train_seeds[0]
    data = corpus_data(Path(args.corpus), keep=True)
    run = trained("unseen", seed, data, enc, args)
    print(f"unseen fit of train seed {seed}: {run.fit.generative_report.steps} steps", flush=True)
    sets = query_sets(run, data, seed, args.max_queries)
    print(", ".join(f"{k} {len(v)} queries" for k, v in sets.items()), flush=True)
    t0 = time.perf_counter()
    with dense_pool() as pooled:
        tables = {k: fused_search.component_table(run.inputs, [t for t, _ in v], 10, 10)
                  for k, v in sets.items()}  # fmt: skip
    print(f"candidate tables: {time.perf_counter() - t0:.0f} s", flush=True)
    gold = {k: [g for _, g in v] for k, v in sets.items()}
    full = Probe(tables, gold, run.inputs.captioned, run.inputs.present)
    served = full.build_fit(full.present)
    full.report(served)
    pool = Probe(dict(zip(sets, pooled)), gold, run.inputs.captioned, run.inputs.present)
    label = "candidates from the dense sides and BM25 only"
    pool.line(f"{label}: the build's fit", *pool.build_fit(pool.present))
    plain = pool.build_fit(pool.plain)
    pool.line(f"{label}: without generation (the protocol bench's refit)", *plain)
    gated(full, served, pool, plain)


def gated(full: Probe, served, pool: Probe, plain) -> None:
    """A query whose captions beam is less sure than a threshold served as if without
    generation (its candidates and weights), the others by the build's fit; the threshold fit
    on held-val (of 41 quantiles of the beams' top probability)."""
    w, u = served
    cap = COMPONENTS.index("captions")
    sure = {k: np.array([c.features[:, cap].max(initial=0.0) for c in t])
            for k, t in full.tables.items()}  # fmt: skip
    rr = {}  # per query set: (queries, 2) reciprocal ranks as fused and as without generation
    for k in full.tables:
        as_fused = full.rr(k, w[None], u[None])[:, 0, 0]
        rr[k] = np.stack([as_fused, pool.rr(k, plain[0][None], plain[1][None])[:, 0, 0]], 1)
    taus = np.quantile(np.concatenate([sure["val"], sure["held-val"]]), np.linspace(0, 1, 41))
    scores = []
    for tau in taus:
        chosen = {k: np.where(sure[k] >= tau, v[:, 0], v[:, 1]) for k, v in rr.items()}
        scores.append(0.5 * chosen["val"].mean() + 0.5 * chosen["held-val"].mean())
    tau = taus[int(np.argmax(scores))]
    cells = []
    for name in ("held-test", "captioned-test"):
        chosen = np.where(sure[name] >= tau, rr[name][:, 0], rr[name][:, 1])
        cells.append(f"{name} R@1 {np.mean(chosen == 1):.3f} MRR@10 {chosen.mean():.3f}")
    print(f"| gated by the captions beam's top probability (>= {tau:.3f}; held-val's median "
          f"{np.median(sure['held-val']):.3f}, val's {np.median(sure['val']):.3f}) | | | "
          + " | ".join(cells) + " |", flush=True)  # fmt: skip


def query_sets(run, data, seed: int, limit: int) -> dict[str, list]:
    """val (the build's validation sample), held-val (queries of a third of the held-out
    items), held-test (of the other two thirds) and captioned-test (the split's test queries),
    each a seeded sample (at most 500, ``limit``, ``limit``)."""
    ids, captions = data[0], data[3]
    held = all_queries("unseen", ids, captions, run.fit.split, run.train_caps)
    items = sorted({g for _, g in held})
    probe = set(np.random.default_rng(7).choice(items, len(items) // 3, replace=False).tolist())
    return {
        "val": scored_sample(run.fit.split, 500, 500, seed, set()).val,
        "held-val": sampled([q for q in held if q[1] in probe], 500, seed),
        "held-test": sampled([q for q in held if q[1] not in probe], limit, seed),
        "captioned-test": sampled(list(run.fit.split.test), limit, seed),
    }


@contextlib.contextmanager
def dense_pool():
    """While open, every candidate table is also built with candidates from the dense sides
    and BM25 only (the beams' probabilities kept where they found such a candidate); those
    tables are appended to the yielded list, one per table built."""
    pooled: list[list[Candidates]] = []

    def both(generated, dense):
        full = candidates(generated, dense)
        pooled.append([_pooled(c, dense, n) for n, c in enumerate(full)])
        return full

    fused_search.candidates = both
    try:
        yield pooled
    finally:
        fused_search.candidates = candidates


def _pooled(c: Candidates, dense, n: int) -> Candidates:
    keep = sorted({r for side in dense.values() for r, _ in side.hits[n]})
    rows = np.array(keep, np.int64)
    feats = c.features[np.searchsorted(c.rows, rows)].copy()
    for name, side in dense.items():  # normalised again over the smaller pool
        only = candidates({}, {name: _single(side, n, rows)})[0]
        feats[:, COMPONENTS.index(name)] = only.features[:, COMPONENTS.index(name)]
    return Candidates(rows, feats)


def _single(side, n: int, rows: np.ndarray):
    """``side`` as one query (query ``n``) whose top list is ``rows``."""
    return DenseSide([[(int(r), 0.0) for r in rows]], lambda _, r: side.score(n, r))


class Probe:
    """Weightings scored on the candidate tables of each query set."""

    def __init__(self, tables, gold, captioned, present):
        self.tables, self.gold, self.captioned, self.present = tables, gold, captioned, present

    def rr(self, name: str, grid: np.ndarray, ugrid: np.ndarray) -> np.ndarray:
        """(queries, weightings, uncaptioned weightings) reciprocal ranks on a query set."""
        return reciprocal_ranks(self.tables[name], self.gold[name], self.captioned, grid, ugrid)

    def held_val(self, grid: np.ndarray, ugrid: np.ndarray) -> np.ndarray:
        """MRR@10 of each pair: the validation queries and held-val, half each."""
        val, held = self.rr("val", grid, ugrid), self.rr("held-val", grid, ugrid)
        return 0.5 * val.mean(0) + 0.5 * held.mean(0)

    def line(self, label: str, w: np.ndarray, u: np.ndarray) -> None:
        cells = []
        for name in ("held-test", "captioned-test"):
            rr = self.rr(name, w[None], u[None])[:, 0, 0]
            cells.append(f"{name} R@1 {np.mean(rr == 1):.3f} MRR@10 {rr.mean():.3f}")
        named = lambda v: "/".join(f"{x:g}" for x in np.round(v, 2))  # noqa: E731
        print(f"| {label} | {named(w)} | {named(u)} | " + " | ".join(cells) + " |", flush=True)

    def build_fit(self, present) -> tuple[np.ndarray, np.ndarray]:
        rec = fit_fusion(self.tables["val"], self.gold["val"], present, self.captioned)
        return weight_vector(rec["weights"]), weight_vector(rec["uncaptioned"])

    @property
    def plain(self) -> list[str]:
        """The components but the generative ones."""
        return [c for c in self.present if c not in GENERATIVE]

    def report(self, served: tuple[np.ndarray, np.ndarray]) -> None:
        """The table's rows on the full candidates; ``served``: the build's fit (weights,
        uncaptioned weights)."""
        print(f"\n| weighting | weights ({'/'.join(COMPONENTS)}) | uncaptioned | "
              "held-test | captioned-test |\n|---|---|---|---|---|")  # fmt: skip
        w, u = served
        self.line("the build's fit (blinded), served", w, u)
        mix = np.concatenate([weight_grid(BEAM_MIX, 0.1) * s for s in UNCAPTIONED_SCALES])
        towers = uncaptioned_grid(self.present)  # the build's own: towers alone, each scale
        self.line("uncaptioned fit on held-val, towers alone", w, self._best_u(w, towers))
        u = self._best_u(w, mix)
        self.line("uncaptioned fit on held-val, towers and beams", w, u)
        grid = weight_grid(self.present, 0.1)
        for turn in (1, 2):
            w = grid[int(np.argmax(self.held_val(grid, u[None])[:, 0]))]
            u = self._best_u(w, mix)
            self.line(f"both fit on held-val, turn {turn}", w, u)
        self.line("without generation, blinded", *self.build_fit(self.plain))
        grid = weight_grid(self.plain, 0.1)
        mrr = self.held_val(grid, towers)
        i, j = np.unravel_index(int(np.argmax(mrr)), mrr.shape)
        self.line("without generation, fit on held-val", grid[i], towers[j])

    def _best_u(self, w: np.ndarray, ugrid: np.ndarray) -> np.ndarray:
        return ugrid[int(np.argmax(self.held_val(w[None], ugrid)[0]))]


if __name__ == "__main__":
    main()
