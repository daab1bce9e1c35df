"""``ace eval --queries FILE.jsonl``: score a version on the user's own held-out pairs.

Each line is ``{"query": text, "path": item}``; ``path`` is an item's path inside its source
(as results show it) or its absolute location. Each method under its own key, each with
R@1/5/10 and MRR@10: ``auto`` (the default path as served, or ``path``), ``generative`` (pure
generation: the version's generative path), ``text_tower_dense`` (the encoders' text towers
searched exactly over the item embeddings, where the towers load), and where the version has
captions ``dense`` (the caption-trained dense baseline) and ``bm25`` (BM25 over each item's
training captions and file name).
"""

from __future__ import annotations

import json
from pathlib import Path

from ace_core.bounded_read import read_text_bounded
from ace_core.errors import AceInputError
from ace_core.retrieval.evaluation import retrieval_metrics
from ace_core.retrieval.zero_shot import tower_dense_search
from query.fused import training_index
from query.loaded import LoadedVersion, load_version
from query.search import DEFAULT_BEAM, search_version
from query.towers import towers_are_trained

MAX_LINE = 1 << 20
MAX_QUERY_FILE = 256 << 20  # the whole --queries file (an endless one stops here)


def read_query_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(query, item path) pairs; a malformed line is an error naming the line."""
    pairs = []
    try:
        text = read_text_bounded(path, MAX_QUERY_FILE)
    except OSError as e:
        raise AceInputError(f"cannot read --queries {path}: {e.strerror or e}") from e
    try:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if len(line) > MAX_LINE:
                raise AceInputError(f"{path}:{n}: line longer than {MAX_LINE} characters")
            pairs.append(_pair(json.loads(line), path, n))
    except json.JSONDecodeError as e:
        raise AceInputError(f"{path}: not JSON lines ({str(e).splitlines()[0]})") from e
    if not pairs:
        raise AceInputError(f"{path} holds no queries")
    return pairs


def _pair(rec, path, n) -> tuple[str, str]:
    if not isinstance(rec, dict) or not isinstance(rec.get("query"), str) or not rec["query"]:
        raise AceInputError(f'{path}:{n}: expected {{"query": text, "path": item path}}')
    if not isinstance(rec.get("path"), str) or not rec["path"]:
        raise AceInputError(f"{path}:{n}: no item path")
    return rec["query"], rec["path"]


def evaluate_query_file(
    store: str, version: str | None, queries: str, *, path: str = "auto", beam: int = DEFAULT_BEAM
) -> dict:
    """Metrics of the version's ``path`` (the served ``auto`` by default), of the dense
    caption baseline and of the text towers' exact search on the file's pairs."""
    vm = load_version(store, version)
    pairs = read_query_pairs(queries)
    rows = _rows_by_path(vm)
    known = [(q, rows[p]) for q, p in pairs if p in rows]
    unknown = sorted({p for _, p in pairs if p not in rows})
    if not known:
        raise AceInputError(f"none of the {len(pairs)} queries names an indexed item")
    texts, gold = [q for q, _ in known], [g for _, g in known]
    methods = every_method(vm, texts, gold, path, beam)
    return {"version": vm.version, "queries": len(known), "unknown_items": unknown, **methods}


def every_method(vm: LoadedVersion, texts, gold, path: str = "auto", beam=DEFAULT_BEAM) -> dict:
    """The metrics of ``path`` as served (key ``auto``), of pure generation and of every
    baseline on the same (text, row) queries."""
    k = min(10, vm.n_items)
    answer = search_version(vm, texts, k, path=path, beam=beam)
    generative = search_version(vm, texts, k, path="generative", beam=beam)
    dense = search_version(vm, texts, k, path="dense") if vm.captions else None
    return {
        "path": answer.path,
        "generative_path": generative.path,
        "auto": _metrics(answer, vm, gold),
        "generative": _metrics(generative, vm, gold),
        "text_tower_dense": _tower_metrics(vm, texts, gold, k),
        "dense": _metrics(dense, vm, gold) if dense else None,
        "bm25": _bm25_metrics(vm, texts, gold, k) if vm.captions else None,
    }


def _bm25_metrics(vm: LoadedVersion, texts, gold, k) -> dict:
    """BM25 (bm25s) over each item's training captions and file name: the lexical baseline
    (held-out captions never enter its documents)."""
    index = training_index(vm)
    return retrieval_metrics([[r for r, _ in index.search(t, k)] for t in texts], gold)


def _metrics(answer, vm: LoadedVersion, gold) -> dict:
    ranked = [[vm.row_of[r["item_id"]] for r in row] for row in answer.results]
    return retrieval_metrics(ranked, gold)


def _tower_metrics(vm: LoadedVersion, texts, gold, k) -> dict | None:
    if not towers_are_trained(vm.encoders):
        return None  # randomly initialised towers: not a baseline
    try:
        spaces = vm.text_spaces()
        hits = tower_dense_search(spaces, texts, vm.model.item_emb, k)
    except AceInputError:
        return None  # towers not usable here (older version, other weights, no tokenizer)
    return retrieval_metrics([[i for i, _ in row] for row in hits], gold)


def _rows_by_path(vm: LoadedVersion) -> dict[str, int]:
    rows = {}
    for n, item_id in enumerate(vm.model.item_ids):
        item = vm.items[item_id]
        rows[item["path"]] = n
        source = vm.sources.get(item["source_id"])
        if source:
            rows[source.locate(item["path"])] = n
    return rows


def evaluate_served_path(store: str, version: str | None, path: str = "auto") -> dict:
    """The version's own test queries (the protocol's split and seeded sample, as its build
    evaluated them) scored on ``path`` as it is served, beside the dense caption baseline and
    the text towers' exact search; kept in the store (versions are immutable)."""
    from storage.formats.tables import write_json_atomic
    from storage.store import Store

    s = Store(store)
    v = s.resolve(version)
    saved = s.evaluation_file(v, path)
    if saved.exists():
        return json.loads(saved.read_text())
    vm = load_version(store, v)
    split = vm.held_out_queries()
    test = split.test
    if not test:
        raise AceInputError(f"{v} has no test captions to score a query path on")
    texts, gold = [t for t, _ in test], [n for _, n in test]
    methods = every_method(vm, texts, gold, path)
    out = {"version": v, "queries": len(test), "protocol": split.protocol, **methods,
           "served": methods["auto"]}  # fmt: skip
    write_json_atomic(out, saved)
    return out
