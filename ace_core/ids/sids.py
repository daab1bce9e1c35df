"""A set of semantic IDs (coarse cluster, fine RQ codes, collision suffix per item): light,
numpy only, so reading or diffing IDs never imports torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SemanticIDs:
    """IDs of a set of items, row-aligned with ``item_ids`` (sorted)."""

    item_ids: list[str]
    coarse: np.ndarray  # int64 (n,)
    fine: np.ndarray  # int64 (n, L)
    suffix: np.ndarray  # int64 (n,)

    @property
    def sids(self) -> list[str]:
        return [format_sid(c, f, s) for c, f, s in zip(self.coarse, self.fine, self.suffix)]

    def tokens(self) -> np.ndarray:
        """(n, L + 2) int64: coarse, fine..., suffix."""
        return np.concatenate([self.coarse[:, None], self.fine, self.suffix[:, None]], axis=1)

    def concat(self, other: SemanticIDs) -> SemanticIDs:
        ids = self.item_ids + other.item_ids
        order = np.argsort(ids, kind="stable")
        return SemanticIDs(
            [ids[i] for i in order],
            np.concatenate([self.coarse, other.coarse])[order],
            np.concatenate([self.fine, other.fine])[order],
            np.concatenate([self.suffix, other.suffix])[order],
        )


def format_sid(coarse: int, fine: Sequence[int], suffix: int) -> str:
    return ".".join(str(int(t)) for t in (coarse, *fine, suffix))
