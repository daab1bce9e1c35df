"""Stable identifiers across re-indexes: a re-index keeps every ID of the items still present
and assigns new items with the frozen codebooks, as an ingest does, unless the codebooks no
longer fit the corpus (drift) or a refit is asked for.

Drift is the relative reconstruction error of the whole new corpus under the frozen codebooks
divided by their error, computed the same way, on the items of the version they come from:
1.0 when the corpus is unchanged (or new items fit as well as the old); above MAX_DRIFT the
IDs are refitted. ``since_fit`` (the new corpus' error over the error recorded when the
codebooks were fitted, on their training items) is reported beside it: it carries the
optimism of a fit measured on its own training data, so it is not the trigger.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ace_core.ids.quality import relative_error
from ace_core.ids.rqvae import rq_decode
from ace_core.ids.semantic_ids import SemanticIndexer
from ace_core.ids.sids import SemanticIDs

MAX_DRIFT = 1.25


def codebook_drift(indexer: SemanticIndexer, x_new: np.ndarray, x_old: np.ndarray) -> dict | None:
    """``drift`` (error on ``x_new`` over error on ``x_old``, both under the frozen
    codebooks) and ``since_fit``; None when the IDs cannot be extended (hkmeans/random)."""
    if indexer.rqvae is None or len(x_new) == 0 or len(x_old) == 0:
        return None
    now, before = _error(indexer, x_new), _error(indexer, x_old)
    fitted = indexer.report.get("rel_recon_error")
    return {
        "drift": round(now / before, 4) if before > 0 else 1.0,
        "since_fit": round(now / fitted, 4) if fitted else None,
    }


def _error(indexer: SemanticIndexer, x: np.ndarray) -> float:
    x = np.asarray(x, np.float32)
    coarse, fine = indexer.encode(x)
    return relative_error(x - indexer.centroids[coarse], rq_decode(indexer.rqvae, fine))


def keep_ids(
    indexer: SemanticIndexer, previous: SemanticIDs, item_ids: Sequence[str], x: np.ndarray
) -> tuple[SemanticIDs, dict]:
    """The previous IDs of the items still present, and IDs for the new ones (suffixes of
    removed items stay reserved, so no ID ever names a different item)."""
    present = set(item_ids)
    rows = [i for i, item in enumerate(previous.item_ids) if item in present]
    kept = SemanticIDs(
        [previous.item_ids[i] for i in rows],
        previous.coarse[rows],
        previous.fine[rows],
        previous.suffix[rows],
    )
    merged, report = indexer.extend(kept, item_ids, x, reserved=previous)
    return merged, {**report, "kept_items": len(rows)}
