"""One warning before training when a build has no validation queries (issue 43): the run
would otherwise train its whole budget, keep default fusion weights and publish uncalibrated
relevance without a word."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ace_core.retrieval.evaluation import split_queries
from ace_index.tasks._progress import STAGE, run_logger

NO_VALIDATION = (
    "no validation queries (%d of %d items captioned, %s): training runs its whole step budget "
    "(no early stopping on validation), the fused path keeps its default weights and relevance "
    "is uncalibrated; to fix it, give more items captions: 3 or more per item when captions "
    "carry no split, or a val split (ace import-captions FORMAT FILE=val@FOLDER)"
)


def warn_if_no_validation(item_ids: Sequence[str], captions: Mapping, seed: int) -> bool:
    """True (and one warning line) when the captions split (ace_core.retrieval.evaluation,
    the split training uses) leaves no validation query."""
    split = split_queries(item_ids, captions, seed=seed)
    if split.val:
        return False
    captioned = sum(1 for i in item_ids if i in captions)
    how = f"{split.protocol} protocol: " + (
        "captions.jsonl's splits hold no val caption"
        if split.protocol == "unseen"
        else "no item has 3 or more captions"
    )
    run_logger().warning(NO_VALIDATION, captioned, len(item_ids), how, extra=STAGE)
    return True
