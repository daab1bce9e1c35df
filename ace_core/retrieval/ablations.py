"""The paper's ablations: the same training with one part of ACE taken away.

no_coarse (no K-Means coarse token), hkmeans (hierarchical k-means instead of the RQ-VAE),
random_ids (uniform random IDs), no_fusion (decoder without the coarse-to-fine fusion).
Each trains its own model; the result is the test metrics of each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from ace_core.ids.semantic_ids import SemanticIndexer, fit_semantic_ids
from ace_core.ids.sids import SemanticIDs
from ace_core.index_config import IndexConfig
from ace_core.retrieval.fit import fit_retrieval

ABLATIONS = ("no_coarse", "hkmeans", "no_fusion", "random_ids")
_ID_MODES = {"no_coarse": "no_coarse", "hkmeans": "hkmeans", "random_ids": "random"}


class VersionData(Protocol):
    item_ids: list[str]
    embeddings: np.ndarray
    sids: SemanticIDs
    indexer: SemanticIndexer
    captions: dict


def run_ablations(data: VersionData, config: IndexConfig) -> dict:
    """{ablation name: generative test metrics}."""
    out = {}
    for name in ABLATIONS:
        retriever, sids, indexer = config.retriever, data.sids, data.indexer
        if name == "no_fusion":
            retriever = replace(retriever, fusion=False)
        else:
            ids_config = replace(config.ids, mode=_ID_MODES[name])
            indexer, sids = fit_semantic_ids(data.item_ids, data.embeddings, ids_config)
        fit = fit_retrieval(
            data.item_ids,
            data.embeddings,
            sids,
            indexer,
            data.captions,
            config=retriever,
            train=config.train,
        )
        out[name] = fit.eval["generative"]
    return out
