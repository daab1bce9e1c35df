"""Both generative paths merged (what ``generative`` means for a version with captions and
trained towers): ace_core.retrieval.zero_shot.merge_generated."""

from __future__ import annotations

from ace_core.retrieval.zero_shot import merge_generated
from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import Ranked, RankRequest
from ace_index.query.rankers.captions import CaptionsRanker
from ace_index.query.rankers.zero_shot import ZeroShotRanker


class BothRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        return True

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        captions = CaptionsRanker().rank(loaded, request).hits
        zero = ZeroShotRanker().rank(loaded, request).hits
        return Ranked(merge_generated(loaded.model.decoder, captions, zero, request.k))
