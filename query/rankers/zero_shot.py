"""The zero-shot path: the item encoders' text towers into the decoder's item-memory path,
each item space decoded against its own items' trie, merged by score."""

from __future__ import annotations

from ace_core.retrieval.zero_shot import zero_shot_search
from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import Ranked, RankRequest


class ZeroShotRanker:
    def available(self, loaded: LoadedVersion) -> bool:
        return True  # text_spaces says why when the towers do not load

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        model = loaded.model
        spaces = loaded.spaces_of(request.modality, request.filters)
        return Ranked(
            zero_shot_search(
                model.decoder,
                spaces,
                request.texts,
                model.item_emb.shape[1],
                request.k,
                request.beam,
                device=model.device,
            )
        )
