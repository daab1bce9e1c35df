"""The text-tower dense baseline (what clip-retrieval does): each query's tower embedding
searched exactly over its item space's embeddings, merged by cosine. Not a served path: a
baseline ``ace eval`` reports beside it, where the towers are trained and load."""

from __future__ import annotations

from ace_core.errors import AceInputError
from ace_core.retrieval.zero_shot import tower_dense_search
from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import Ranked, RankRequest
from ace_index.storage.formats.shards import towers_are_trained


class TextTowerRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        if not towers_are_trained(loaded.encoders):
            return False  # randomly initialised towers: not a baseline
        try:
            loaded.text_spaces()
        except AceInputError:
            return False  # towers not usable here (older version, other weights, no tokenizer)
        return True

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        spaces = loaded.spaces_of(request.modality, request.filters)
        return Ranked(tower_dense_search(spaces, request.texts, loaded.model.item_emb, request.k))
