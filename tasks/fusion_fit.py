"""The fused path's weights of a version being built, fit on its validation queries right
after its retriever trains (ace_core.retrieval.fused_search) and kept in eval.json, from
which publish copies them into the manifest."""

from __future__ import annotations

from dataclasses import dataclass

from ace_core.index_config import IndexConfig
from ace_core.media.embed_config import embed_cache_key
from ace_core.media.modalities import SPACE_OF_MODALITY
from ace_core.retrieval.evaluation import scored_sample
from ace_core.retrieval.fit import FitResult
from ace_core.retrieval.fused_search import corpus_inputs, fit_version_fusion
from ace_core.retrieval.validation import ZeroShotInputs
from ace_index.storage.formats.shards import read_encoders, towers_are_trained
from ace_index.storage.formats.version_data import read_version_items
from ace_index.storage.store import open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.tasks._progress import stage
from ace_index.tasks.embed import encoders_for

BEAM = 10  # the served beam (query.request.DEFAULT_BEAM)


@dataclass(frozen=True)
class VersionItems:
    """A staged version's items in the retriever's row order (sorted item ids): modality and
    path, and the item encoders' text towers where they mean something (trained)."""

    modalities: list[str]
    paths: list[str]
    towers: dict | None

    @classmethod
    def read(cls, store: str, v: VersionLayout, config: IndexConfig, item_ids: list[str]):
        items = read_version_items(v).select(["item_id", "modality", "path"]).to_pydict()
        row_of = {item_id: row for row, item_id in enumerate(items["item_id"])}
        modalities = [items["modality"][row_of[i]] for i in item_ids]
        paths = [items["path"][row_of[i]] for i in item_ids]
        encoders = read_encoders(open_store(store).embed_cache_dir(embed_cache_key(config.embed)))
        towers = None
        if towers_are_trained(encoders):
            built = encoders_for(config.embed, set(modalities))
            towers = {m: e.embed_text for m, e in built.items() if SPACE_OF_MODALITY[m] == m}
        return cls(modalities, paths, towers)

    @property
    def zero_shot(self) -> ZeroShotInputs | None:
        return None if self.towers is None else ZeroShotInputs(self.modalities, self.towers)


def fit_fusion_weights(
    items: VersionItems, config: IndexConfig, fit: FitResult, has_captions: bool
) -> dict | None:
    """The version's fusion record (None: nothing to fit: no validation queries, or a single
    component)."""
    inp = corpus_inputs(
        fit.model, items.modalities, items.paths, items.towers, fit.split.train, has_captions
    )
    t = config.train
    val = scored_sample(fit.split, t.max_val_queries, t.max_test_queries, t.seed, set()).val
    record = fit_version_fusion(inp, val, BEAM)
    if record:
        stage(
            "fusion weights fit on %d validation queries: %s (uncaptioned items: %s)",
            record["queries"],
            record["weights"],
            record["uncaptioned"],
        )
    return record
