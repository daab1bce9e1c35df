"""What a ranker is: it says whether a loaded version can run it, and ranks a checked
request's queries over the version's items that pass the request's modality and filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ace_index.query.filters import Filters
from ace_index.query.rankers.registry import ranker

if TYPE_CHECKING:
    from ace_index.query.loaded import LoadedVersion

Hits = list[list[tuple[int, float]]]  # per query: (row of the model's items, score), best first


@dataclass(frozen=True)
class RankRequest:
    """Queries already checked (query.request), ``k`` clamped to the items that pass."""

    texts: list[str]
    k: int
    modality: str | None = None
    beam: int = 10
    filters: Filters = field(default_factory=Filters)


@dataclass
class Ranked:
    hits: Hits
    tables: list | None = None  # the fused ranker's candidate tables (score components)


class Ranker(Protocol):
    def available(self, loaded: LoadedVersion) -> bool:
        """Whether the version has what this ranker reads."""

    def rank(self, loaded: LoadedVersion, request: RankRequest) -> Ranked:
        """The top ``request.k`` items of each query."""


def to_rows(found, rows) -> Hits:
    """Hits over a subset's positions -> hits over the model's rows."""
    return [[(int(rows[i]), s) for i, s in row] for row in found]


def rank(
    loaded,
    name: str,
    texts: list[str],
    k: int,
    modality: str | None = None,
    beam: int = 10,
    filters=None,
):
    """Run ranker ``name`` on checked queries over the items of ``loaded`` that pass
    (``modality``, ``filters``), ``k`` clamped to them; no items: no hits."""
    filters = filters or Filters()
    rows, _ = loaded.subset(modality, filters)
    if not len(rows):
        return Ranked([[] for _ in texts])
    request = RankRequest(texts, min(k, len(rows)), modality, beam, filters)
    return ranker(name).rank(loaded, request)
