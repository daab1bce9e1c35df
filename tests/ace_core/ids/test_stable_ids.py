"""IDs kept across re-indexes: items still present keep their IDs, new ones are assigned
with the frozen codebooks, a removed item's ID is never given to another item, and drift is
1.0 for an unchanged corpus and large for a corpus the codebooks never saw."""

import numpy as np
from test_semantic_ids import FAST_RQ, clustered, ids_for

from ace_core.ids.kmeans import KMeansConfig
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
from ace_core.ids.stable_ids import codebook_drift, keep_ids


def _fitted(n=600):
    x, ids = clustered(n), ids_for(n)
    cfg = SemanticIDConfig(kmeans=KMeansConfig(k=8), rqvae=FAST_RQ, faiss_reference=False)
    indexer, sids = fit_semantic_ids(ids, x, cfg)
    return indexer, sids, ids, x


def test_present_items_keep_their_ids_and_removed_ones_are_never_reused():
    indexer, old, ids, x = _fitted()
    before = dict(zip(old.item_ids, old.sids))
    gone = set(ids[:50])
    new_x = clustered(80, seed=1)
    new_ids = ids_for(80, seed=1)
    now_ids = [i for i in ids if i not in gone] + new_ids
    now_x = np.concatenate([x[50:], new_x])
    merged, report = keep_ids(indexer, old, now_ids, now_x)
    after = dict(zip(merged.item_ids, merged.sids))
    assert all(after[i] == before[i] for i in ids[50:])
    assert len(set(merged.sids)) == len(merged.sids) == len(now_ids)
    assert not {after[i] for i in new_ids} & {before[i] for i in gone}
    assert (report["kept_items"], report["new_items"]) == (550, 80)


def test_drift_is_one_for_the_same_corpus_and_large_for_a_foreign_one():
    indexer, _, _, x = _fitted()
    assert codebook_drift(indexer, x, x)["drift"] == 1.0
    rng = np.random.default_rng(5)
    foreign = l2n(rng.standard_normal((300, x.shape[1])).astype(np.float32))
    assert codebook_drift(indexer, foreign, x)["drift"] > 1.25
