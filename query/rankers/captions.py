"""The captions path: the caption-trained text encoder's features through the decoder,
constrained to the trie of the items that pass."""

from __future__ import annotations

from ace_core.retrieval.generation import generative_search
from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import Ranked, RankRequest, to_rows


class CaptionsRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        return True

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        rows, trie = loaded.subset(request.modality, request.filters)
        model = loaded.model
        found = generative_search(
            model.decoder,
            model.features(request.texts),
            trie,
            request.beam,
            request.k,
            device=model.device,
        )
        return Ranked(to_rows(found, rows))
