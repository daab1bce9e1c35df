"""The dense caption baseline: the caption-trained projection of the pooled text features,
searched exactly over the embeddings of the items that pass (an index kept per subset)."""

from __future__ import annotations

from ace_core.retrieval.dense import dense_search
from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import Ranked, RankRequest, to_rows
from ace_index.query.rankers.fused import exact_index


class DenseCaptionRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        return bool(loaded.captions)

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        rows, _ = loaded.subset(request.modality, request.filters)
        index = exact_index(loaded, request.modality, request.filters, rows)
        model = loaded.model
        found = dense_search(model.dense, model.features(request.texts), None, request.k, index)
        return Ranked(to_rows(found, rows))
