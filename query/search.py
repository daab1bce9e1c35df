"""The one search entry: ``Searcher.search(texts, k, *, path, modality, version)`` over a
store, ``search_version`` over a loaded version; ``SearchRequest`` and ``completed`` are the
one pipeline the command line and the service share (checks, filters, sort, keywords).

A request is checked once (query.request.checked_request) and ``auto`` resolved once, here;
``k`` is clamped to the items there are (query.rankers.registry.rank), and the beam search
itself raises a beam below ``k`` (ace_core.retrieval.generation). The command line, the
service, ``ace eval --queries`` and the benchmarks all come through this module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ace_core.retrieval.fusion import COMPONENTS
from ace_core.retrieval.relevance import Calibration
from ace_index.query.filters import Filters, checked_filters, checked_sort, sort_by_date
from ace_index.query.loaded import NO_FILTERS, LoadedVersion, load_version
from ace_index.query.rankers.base import rank
from ace_index.query.relevance import calibration
from ace_index.query.request import DEFAULT_BEAM, QueryError, checked_request
from ace_index.storage.formats.shards import towers_are_trained
from ace_index.storage.store import open_store


@dataclass(frozen=True)
class SearchRequest:
    """One query as the command line and the service take it, checked before any version
    is loaded (a bad one is a QueryError)."""

    text: str
    k: int = 10
    path: str = "auto"
    modality: str | None = None
    filters: Filters = NO_FILTERS
    sort: str = "relevance"
    keywords: bool = False  # also file-name and caption matches (BM25)

    @classmethod
    def checked(
        cls,
        text: str,
        k: int = 10,
        path: str = "auto",
        modality: str | None = None,
        *,
        dense: bool = False,
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
        sort: str = "relevance",
        keywords: bool = False,
    ) -> SearchRequest:
        """The request of these arguments (``dense``: the dense path, whatever ``path``)."""
        texts, k, path, modality = checked_request([text], k, "dense" if dense else path, modality)
        filters = checked_filters(source, since, until)
        return cls(texts[0], k, path, modality, filters, checked_sort(sort), keywords)


def completed(payload: dict, loaded: LoadedVersion, request: SearchRequest) -> dict:
    """One query's payload in the request's order, with its keyword matches when asked for
    (the first keyword search of a version builds its BM25 index: off an event loop)."""
    if request.sort == "date":
        sort_by_date(payload["results"], loaded.items)
    if request.keywords:
        payload["keyword_results"] = keyword_matches(
            loaded, request.text, request.k, request.modality, request.filters
        )
    return payload


@dataclass
class Answer:
    """The results of a batch of queries on one version and one path."""

    version: str
    path: str  # the path that ran (``auto`` resolved)
    queries: list[str]
    results: list[list[dict]]  # per query: LoadedVersion.result rows, best first
    no_good_match: list[bool | None] | None = None  # per query (None: not calibrated)
    calibrated: bool = True  # False: relevance is the documented default (default_relevance)

    @property
    def mode(self) -> str:
        return {"dense": "dense", "fused": "fused"}.get(self.path, "generative")

    def payload(self, n: int = 0) -> dict:
        """Query ``n`` as the command line and the service print it (JSON keys fixed)."""
        return {
            "query": self.queries[n],
            "version": self.version,
            "mode": self.mode,
            "path": None if self.path == "dense" else self.path,
            "no_good_match": self.no_good_match[n] if self.no_good_match else None,
            "relevance_calibrated": self.calibrated,
            "results": self.results[n],
        }


def search_version(
    loaded: LoadedVersion,
    texts: Sequence[str],
    k: int,
    *,
    path: str = "auto",
    modality: str | None = None,
    beam: int = DEFAULT_BEAM,
    filters: Filters = NO_FILTERS,
) -> Answer:
    """Top-k results of each query in one batched search of ``loaded``."""
    return search_checked(loaded, *checked_request(texts, k, path, modality), beam, filters)


def search_checked(
    loaded: LoadedVersion,
    texts: list[str],
    k: int,
    path: str,
    modality: str | None,
    beam: int,
    filters: Filters = NO_FILTERS,
) -> Answer:
    """``search_version`` of a request ``checked_request`` already returned."""
    path = loaded.resolve(path)
    if loaded.n_items == 0:
        raise QueryError("the index holds no items")
    if filters.source and filters.source not in loaded.sources:
        known = ", ".join(sorted(loaded.sources)) or "none"
        raise QueryError(f"unknown source {filters.source!r} in {loaded.version} ({known})", 404)
    ranked = rank(loaded, path, texts, k, modality, beam, filters)
    results = [[loaded.result(i, score) for i, score in row] for row in ranked.hits]
    if ranked.tables:
        for row, table in zip(results, ranked.tables):
            with_components(row, table, loaded)
    return with_relevance(Answer(loaded.version, path, texts, results), calibration(loaded, path))


def with_components(row: list[dict], table, loaded: LoadedVersion) -> None:
    """Each fused result's score components (COMPONENTS: probability or normalised cosine)."""
    at = {int(r): n for n, r in enumerate(table.rows)}
    for r in row:
        feats = table.features[at[loaded.row_of[r["item_id"]]]]
        r["components"] = {c: round(float(f), 4) for c, f in zip(COMPONENTS, feats)}


def with_relevance(answer: Answer, cal: Calibration | None) -> Answer:
    """Each result's ``relevance``, the results ordered by it (it puts the modalities' score
    scales on one footing; within a modality the order of the scores stays), and per query
    ``no_good_match``: no result reaches the threshold. A version without validation queries
    has no calibration: its relevance is the documented default (``default_relevance``), the
    answer says ``calibrated`` False and claims no "no good match"."""
    answer.calibrated = cal is not None
    for row in answer.results:
        for r in row:
            if cal is None:
                r["relevance"] = default_relevance(answer.path, r["score"])
            else:
                r["relevance"] = cal.relevance(r["score"], r["modality"])
        if cal is not None:
            row.sort(key=lambda r: -r["relevance"])
    if cal is not None:
        answer.no_good_match = [
            not row or row[0]["relevance"] < cal.threshold for row in answer.results
        ]
    return answer


def default_relevance(path: str, score: float) -> float:
    """Relevance without a calibration: on the fused path its score (a weighted mean of
    components in [0, 1]), on the dense path the cosine (below 0: 0), on a generative path
    the decoder's own probability of the ID (its score is a log-probability)."""
    if path in ("fused", "dense"):
        return round(min(1.0, max(0.0, score)), 4)
    return round(math.exp(min(score, 0.0)), 4)


def keyword_matches(
    loaded: LoadedVersion,
    text: str,
    k: int,
    modality: str | None = None,
    filters: Filters = NO_FILTERS,
) -> list[dict]:
    """Items whose file name or captions hold the query's words (BM25), best first."""
    rows = loaded.subset(modality, filters)[0] if modality or filters.active else None
    found = loaded.keyword_index().search(text, k, rows)
    return [{**loaded.result(row, score), "match": "keywords"} for row, score in found]


class Searcher:
    """Searches a store: LATEST (reloaded by ``refresh`` when it moves) and up to
    ``max_pinned`` older versions asked for by name, each loaded once. With ``warm``, a new
    LATEST answers one search before it is swapped in, so that no request waits on what its
    first search builds (the trie, the dense and keyword indexes: 2-4 s at 100k items)."""

    def __init__(self, store: str, *, max_pinned: int = 2, warm: bool = False):
        self.store, self.max_pinned, self.warm = store, max_pinned, warm
        self.current: LoadedVersion | None = None
        self.pinned: dict[str, LoadedVersion] = {}
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load LATEST if it moved (errors propagate; what was loaded stays): True if it did."""
        latest = self.moved_latest()
        if latest is not None:
            self.swap_in(latest)
        return latest is not None

    def moved_latest(self) -> str | None:
        """LATEST's name when it is not the loaded version (None: nothing to load)."""
        latest = open_store(self.store).latest()
        if latest is None or (self.current and self.current.version == latest):
            return None
        return latest

    def swap_in(self, name: str) -> None:
        """Load version ``name`` and make it the current one (one reference swap)."""
        loaded = load_version(self.store, name)
        if towers_are_trained(loaded.encoders) or loaded.resolve("auto") == "zero-shot":
            loaded.text_spaces()  # the towers auto needs load before the swap, not on a query
        if self.warm:
            warm_up(loaded)
        self.current = loaded

    def version(self, name: str | None = None) -> LoadedVersion:
        """The loaded version ``name`` (LATEST for None)."""
        current = self.current
        if current is None and name in (None, ""):
            self.refresh()
            current = self.current
        if current is not None and name in (None, "", current.version):
            return current
        resolved = open_store(self.store).resolve(name or None)
        with self._lock:
            if resolved not in self.pinned:
                if len(self.pinned) >= self.max_pinned:
                    self.pinned.pop(next(iter(self.pinned)))
                self.pinned[resolved] = load_version(self.store, resolved)
            return self.pinned[resolved]

    def search(
        self,
        texts: Sequence[str],
        k: int,
        *,
        path: str = "auto",
        modality: str | None = None,
        version: str | None = None,
        beam: int = DEFAULT_BEAM,
        filters: Filters = NO_FILTERS,
    ) -> Answer:
        """``search_version`` on ``version`` (LATEST by default); a bad request fails before
        any version is loaded."""
        request = checked_request(texts, k, path, modality)
        return search_checked(self.version(version), *request, beam, filters)

    def answer(
        self, request: SearchRequest, version: str | None = None, beam: int = DEFAULT_BEAM
    ) -> dict:
        """The payload of one checked request on ``version`` (LATEST by default)."""
        loaded = self.version(version)
        found = search_checked(
            loaded,
            [request.text],
            request.k,
            request.path,
            request.modality,
            beam,
            request.filters,
        )
        return completed(found.payload(0), loaded, request)


def warm_up(loaded: LoadedVersion) -> None:
    """One search of the default path, for what it builds on its first query (a version
    whose default path cannot answer is served all the same: its other paths may)."""
    if loaded.n_items:
        try:
            search_checked(loaded, ["warm up"], 10, "auto", None, DEFAULT_BEAM)
        except QueryError:
            pass
