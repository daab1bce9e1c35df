"""BM25 (bm25s) over each item's training captions and file name: the lexical baseline
(held-out captions never enter its documents). Not a served path: ``ace eval`` reports it
where the version has captions; the fused ranker reads the same index as a component."""

from __future__ import annotations

from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import Ranked, RankRequest
from ace_index.query.rankers.fused import training_index


class KeywordsRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        return bool(loaded.captions)

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        rows = None
        if request.modality or request.filters.active:
            rows = loaded.subset(request.modality, request.filters)[0]
        index = training_index(loaded)
        return Ranked([index.search(t, request.k, rows) for t in request.texts])
