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
from ace_core.retrieval.evaluation import retrieval_metrics, sample_queries
from ace_index.query.loaded import LoadedVersion, load_version
from ace_index.query.rankers.base import rank
from ace_index.query.rankers.registry import RANKERS, ranker
from ace_index.query.search import DEFAULT_BEAM, search_version

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
    baseline of the rankers' registry (its ``eval_key``s; None where the version cannot run
    one) on the same (text, row) queries; a served baseline is scored as it is served."""
    k = min(10, vm.n_items)
    answer = search_version(vm, texts, k, path=path, beam=beam)
    generative = search_version(vm, texts, k, path="generative", beam=beam)
    out = {
        "path": answer.path,
        "generative_path": generative.path,
        "auto": _metrics(answer, vm, gold),
        "generative": _metrics(generative, vm, gold),
        "methods": ["generative", *(e.eval_key for e in RANKERS if e.eval_key)],
    }
    for entry in RANKERS:
        if entry.eval_key:
            out[entry.eval_key] = _baseline(vm, entry, texts, gold, k)
    return out


def _baseline(vm: LoadedVersion, entry, texts, gold, k) -> dict | None:
    if not ranker(entry.name).available(vm):
        return None
    if entry.served:
        return _metrics(search_version(vm, texts, k, path=entry.name), vm, gold)
    hits = rank(vm, entry.name, texts, k).hits
    return retrieval_metrics([[r for r, _ in row] for row in hits], gold)


def _metrics(answer, vm: LoadedVersion, gold) -> dict:
    ranked = [[vm.row_of[r["item_id"]] for r in row] for row in answer.results]
    return retrieval_metrics(ranked, gold)


def _rows_by_path(vm: LoadedVersion) -> dict[str, int]:
    rows = {}
    for n, item_id in enumerate(vm.model.item_ids):
        item = vm.items[item_id]
        rows[item["path"]] = n
        source = vm.sources.get(item["source_id"])
        if source:
            rows[source.locate(item["path"])] = n
    return rows


SERVED_TEST_QUERIES = 200  # test queries a build scores its served path on (a seeded sample)
SAMPLE_SEED = 2  # the same sample for the build and for `ace eval --path` afterwards


def evaluate_served_path(store: str, version: str | None, path: str = "auto") -> dict:
    """The version's own test queries (the protocol's split, then a seeded sample of at most
    SERVED_TEST_QUERIES) scored on ``path`` as it is served, beside the dense caption baseline
    and the text towers' exact search; kept in the store (versions are immutable). ``auto``
    of a version built since issue 43 is the one its build scored before publishing."""
    from ace_index.storage.catalog.versions import served_evaluation
    from ace_index.storage.formats.tables import write_json_atomic
    from ace_index.storage.store import open_store

    s = open_store(store)
    v = s.resolve(version)
    kept = served_evaluation(s, v, path)
    if kept is not None:
        return kept
    out = {"version": v, **served_figures(load_version(store, v), path)}
    write_json_atomic(out, s.evaluation_file(v, path))
    return out


def evaluate_staged(store: str, staged: str, config, encoders: dict) -> dict:
    """A staged version's served path (``auto``) scored as ``evaluate_served_path`` scores a
    published one, kept in the staged folder (served_eval.json: published with it)."""
    from ace_index.query.staged import load_staged
    from ace_index.storage.formats.tables import write_json_atomic
    from ace_index.storage.store.layout import VersionLayout

    out = served_figures(load_staged(store, staged, config, encoders), "auto")
    write_json_atomic(out, VersionLayout(staged).served_eval)
    return out


def served_figures(vm: LoadedVersion, path: str) -> dict:
    """``path`` as served, and the baselines, on the sampled test queries of ``vm``."""
    split = vm.held_out_queries()
    if not split.test:
        raise AceInputError(f"{vm.version} has no test captions to score a query path on")
    test = sample_queries(split.test, SERVED_TEST_QUERIES, SAMPLE_SEED, set())
    texts, gold = [t for t, _ in test], [n for _, n in test]
    methods = every_method(vm, texts, gold, path)
    return {
        "queries": len(test),
        "sampled_from": len(split.test),
        "protocol": split.protocol,
        **methods,
        "served": methods["auto"],
    }
