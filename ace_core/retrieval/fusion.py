"""The fused query path: generated candidates re-scored with dense similarity.

A query's candidates are the union of each component's top list:

- ``captions``: the caption-trained generative path (beam log-probabilities);
- ``zero_shot``: the item encoders' text towers through the item-memory path (likewise);
- ``dense``: the caption-trained dense baseline (MiniLM + linear, exact cosine);
- ``text_tower``: the text towers' own embeddings searched exactly (what faiss alone gives);
- ``bm25``: BM25 over each item's training captions and file name (lexical).

Each candidate gets one feature per component: a generative path's probability (0 when the
candidate is not in its beam), a dense side's exact cosine with the candidate, min-max
normalised over the query's candidates (so a candidate only a beam found still gets its dense
score), and its BM25 score over the best candidate's (0 for no shared word). The fused score
is a weighted sum, with one set of weights for candidates with training captions and one for
the others; ``fit_fusion`` chooses them on a version's validation queries and they are kept in
its manifest.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

COMPONENTS = ("captions", "zero_shot", "dense", "text_tower", "bm25")
CAPTION_TRAINED = ("captions", "dense", "bm25")  # know only the items with training captions
GENERATIVE = ("captions", "zero_shot")
Hits = list[list[tuple[int, float]]]  # per query: (row, score), best first


@dataclass
class DenseSide:
    """A dense component: its own top list per query and the exact score of any row."""

    hits: Hits
    score: Callable[[int, np.ndarray], np.ndarray]  # (query number, rows) -> cosines


def vector_side(hits: Hits, queries: np.ndarray, item_emb: np.ndarray) -> DenseSide:
    """A dense side whose query ``n`` is the vector ``queries[n]`` in the items' space."""
    return DenseSide(hits, lambda n, rows: item_emb[rows] @ queries[n])


def spaced_side(
    hits: Hits, queries: Mapping[str, np.ndarray], space_of_row: np.ndarray, item_emb: np.ndarray
) -> DenseSide:
    """A dense side with one query vector per item space (the text towers): a row is scored
    by its own space's vector; a row of a space without one scores -1."""

    def score(n: int, rows: np.ndarray) -> np.ndarray:
        out = np.full(len(rows), -1.0, np.float32)
        for space, q in queries.items():
            mine = space_of_row[rows] == space
            out[mine] = item_emb[rows[mine]] @ q[n]
        return out

    return DenseSide(hits, score)


@dataclass
class Candidates:
    """One query's candidates: rows and their features (columns in COMPONENTS order)."""

    rows: np.ndarray  # int64
    features: np.ndarray  # float32 (n, len(COMPONENTS))


def candidates(generated: Mapping[str, Hits], dense: Mapping[str, DenseSide]) -> list[Candidates]:
    """Per query: the union of every component's top list with each component's feature."""
    lists = [*generated.values(), *(d.hits for d in dense.values())]
    out = []
    for n in range(len(lists[0]) if lists else 0):
        rows = np.array(sorted({r for hits in lists for r, _ in hits[n]}), np.int64)
        feats = np.zeros((len(rows), len(COMPONENTS)), np.float32)
        at = {int(r): i for i, r in enumerate(rows)}
        for name, hits in generated.items():
            for r, s in hits[n]:
                feats[at[r], COMPONENTS.index(name)] = np.exp(s)
        for name, side in dense.items():
            if len(rows):
                scores = side.score(n, rows)
                norm = _over_max(scores) if name == "bm25" else _min_max(scores)
                feats[:, COMPONENTS.index(name)] = norm
        out.append(Candidates(rows, feats))
    return out


def _over_max(x: np.ndarray) -> np.ndarray:
    top = float(x.max())
    return x / top if top > 0 else np.zeros_like(x)


def _min_max(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 1e-12 else np.ones_like(x)


@dataclass(frozen=True)
class Fusion:
    """Fusion weights over COMPONENTS: ``weights`` for candidates with training captions,
    ``uncaptioned`` for the others (the caption-trained components know nothing of them)."""

    weights: Mapping[str, float]
    uncaptioned: Mapping[str, float]

    @classmethod
    def from_record(cls, rec: Mapping) -> Fusion:
        return cls(dict(rec["weights"]), dict(rec.get("uncaptioned") or rec["weights"]))


def fused(table: Sequence[Candidates], fusion: Fusion, captioned: np.ndarray, k: int) -> Hits:
    """Top-k (row, fused score) per query, best first (ties: lower row first).
    ``captioned``: bool per row of the model's items (trained on captions)."""
    w, u = weight_vector(fusion.weights), weight_vector(fusion.uncaptioned)
    out = []
    for c in table:
        scores = np.where(captioned[c.rows], c.features @ w, c.features @ u)
        order = np.lexsort((c.rows, -scores))[:k]
        out.append([(int(c.rows[i]), round(float(scores[i]), 6)) for i in order])
    return out


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    return np.array([float(weights.get(name, 0.0)) for name in COMPONENTS], np.float32)


def weight_grid(present: Sequence[str], step: float = 0.1) -> np.ndarray:
    """Every weighting of the ``present`` components on the simplex in ``step``s, as rows
    of weights over COMPONENTS."""
    n = round(1 / step)
    rows = []
    for parts in itertools.product(range(n + 1), repeat=len(present)):
        if sum(parts) == n:
            w = np.zeros(len(COMPONENTS), np.float32)
            for name, p in zip(present, parts):
                w[COMPONENTS.index(name)] = p / n
            rows.append(w)
    return np.array(rows, np.float32)


# Fine steps around 1, where an uncaptioned candidate's towers score meets a captioned one's
# weighted sum: on the 100k unseen protocol the best scale lay between the old 0.9 and 1.0
# steps, and each 0.02 there moved held-out items' R@1 by up to 7 points (docs/BENCHMARKS.md).
UNCAPTIONED_SCALES = (0.2, 0.3, 0.4, *(round(0.5 + 0.02 * i, 2) for i in range(41)), 1.5)


def uncaptioned_grid(present: Sequence[str]) -> np.ndarray:
    """Weightings of an uncaptioned candidate: the text towers' exact score (the item-memory
    beam's where there are no towers), at each of UNCAPTIONED_SCALES against the captioned
    candidates' scores. Only the scale is fit: validation queries are of captioned items, so
    they cannot tell how the item-memory path does on items it never saw captions of; on
    caption-less corpora giving it weight lowered R@1 (docs/BENCHMARKS.md)."""
    side = "text_tower" if "text_tower" in present else "zero_shot"
    rows = np.zeros((len(UNCAPTIONED_SCALES), len(COMPONENTS)), np.float32)
    rows[:, COMPONENTS.index(side)] = UNCAPTIONED_SCALES
    return rows


def reciprocal_ranks(table, gold, captioned, grid, ugrid, blind=False) -> np.ndarray:
    """(queries, weightings, uncaptioned weightings) reciprocal rank of each query's gold row
    (0 beyond rank 10 or outside the candidates; ties count against the gold row). ``blind``:
    each gold item scored as if it had no training captions (``blinded``)."""
    rr = np.zeros((len(table), len(grid), len(ugrid)), np.float32)
    for q, (c, g) in enumerate(zip(table, gold)):
        hit = np.flatnonzero(c.rows == g)
        if not len(hit):
            continue
        mask = captioned[c.rows].copy()
        if blind:
            c, mask[hit[0]] = blinded(c, g), False
        scores = np.where(
            mask[:, None, None],
            (c.features @ grid.T)[:, :, None],
            (c.features @ ugrid.T)[:, None, :],
        )
        rank = (scores >= scores[hit[0]]).sum(axis=0)
        rr[q] = np.where(rank <= 10, 1.0 / rank, 0.0)
    return rr


def blinded(c: Candidates, gold: int) -> Candidates:
    """``c`` as if the caption-trained components had never learned ``gold``: its captions-path
    probability goes to the other candidates in proportion (where a decoder that does not
    know an item puts it), its caption-trained dense and BM25 scores drop to 0, and the
    others' dense and BM25 features are normalised again without it (BM25's best other
    candidate gets 1, as it would for a query of an item without captions)."""
    feats, at = c.features.copy(), c.rows == gold
    cap = COMPONENTS.index("captions")
    p = float(feats[at, cap].sum())
    if p < 0.999:
        feats[~at, cap] = np.minimum(feats[~at, cap] / (1.0 - p), 1.0)
    for name in CAPTION_TRAINED:
        feats[at, COMPONENTS.index(name)] = 0.0
    for name, norm in (("bm25", _over_max), ("dense", _min_max)):
        others = feats[~at, COMPONENTS.index(name)]
        if others.any():  # normalised again without the gold item's score, as a query gets it
            feats[~at, COMPONENTS.index(name)] = norm(others)
    return Candidates(c.rows, feats)


def fit_fusion(
    table: Sequence[Candidates],
    gold: Sequence[int],
    present: Sequence[str],
    captioned: np.ndarray,
    *,
    step: float = 0.1,
) -> dict:
    """The weights with the best validation MRR@10 (a grid), as a manifest record.

    The validation queries are of captioned items. Where the version also holds items with
    no training caption, every query is scored a second time as if its item were one of them
    (``blinded``) and the two halves weigh the same, so neither kind of item is given up for
    the other; otherwise only the captioned weights matter. Among weightings validation
    cannot tell apart, the one with the fewest components is taken; ``saturated`` says that
    validation could not choose (MRR@10 1.0: every weighting that reaches it is as good).
    """
    if not {"text_tower", "zero_shot"} & set(present):  # nothing but the caption side
        captioned = np.ones_like(captioned)  # scores every candidate alike
    grid, ugrid = weight_grid(present, step), uncaptioned_grid(present)
    mrr = reciprocal_ranks(table, gold, captioned, grid, ugrid).mean(axis=0)
    mixed = not captioned.all() and bool(set(CAPTION_TRAINED) & set(present))
    if mixed:
        blind = reciprocal_ranks(table, gold, captioned, grid, ugrid, blind=True).mean(axis=0)
        mrr = 0.5 * mrr + 0.5 * blind
    i, j = _fewest_components(mrr, grid)
    return {
        "weights": _named(grid[i], present),
        "uncaptioned": _named(ugrid[j] if not captioned.all() else grid[i], present),
        "val_mrr@10": round(float(mrr[i, j]), 4),
        "queries": len(gold),
        "both_kinds": mixed,
        "saturated": bool(mrr[i, j] >= 1.0 - 1e-6),
    }


def _fewest_components(mrr: np.ndarray, grid: np.ndarray) -> tuple[int, int]:
    """The best (weighting, uncaptioned weighting); ties go to the weighting with the fewest
    non-zero weights, then to the first."""
    best = np.argwhere(mrr >= mrr.max() - 1e-6)
    used = (grid[best[:, 0]] > 0).sum(axis=1)
    i, j = best[int(np.argmin(used))]
    return int(i), int(j)


def _named(w: np.ndarray, present: Sequence[str]) -> dict[str, float]:
    return {n: round(float(w[COMPONENTS.index(n)]), 4) for n in present}


def default_fusion(present: Sequence[str]) -> Fusion:
    """Weights for a version with none fit (no validation queries, or built before fusion),
    from the fits measured in docs/BENCHMARKS.md: captioned candidates by the caption-trained
    path, the dense baseline and BM25; the others, and every candidate of a caption-less
    version, by the text towers' exact search (weighting the item-memory beam lowered R@1 on
    caption-less corpora)."""
    prior = {"captions": 0.3, "dense": 0.3, "bm25": 0.3, "text_tower": 0.1}
    if "captions" not in present:
        prior = {"text_tower": 1.0}
    weights = {p: prior.get(p, 0.0) for p in present}
    side = next((p for p in ("text_tower", "zero_shot") if p in present), None)
    if side is None or "captions" not in present:
        return Fusion(weights, weights)
    return Fusion(weights, {p: 0.7 if p == side else 0.0 for p in present})
