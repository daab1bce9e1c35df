"""A version's relevance calibration per query path (ace_core/retrieval/relevance.py): fit
on the version's validation queries (the protocol's split and seeded sample that training
validated on) searched through that path as it is served, kept under evaluations/ (the
build computes the default path's; another path's is fit on its first query). A version
without validation queries (no captions) has none: its results carry the default relevance
(query.search.default_relevance) and say so. Query by example fits its own through
``kept_or_fit`` (query/by_example.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from ace_core.retrieval.relevance import Calibration, fit_calibration
from ace_index.query.loaded import LoadedVersion
from ace_index.query.rankers.base import rank
from ace_index.query.request import DEFAULT_BEAM
from ace_index.storage.formats.tables import write_json_atomic
from ace_index.storage.store import open_store

logger = logging.getLogger(__name__)
RANKED = 10  # results per validation query that the calibration sees


def calibration(loaded: LoadedVersion, path: str) -> Calibration | None:
    """The calibration of ``path`` (resolved) on ``loaded``: kept, or fit now and kept."""
    return kept_or_fit(loaded, path, lambda: _fit(loaded, path) if loaded.store else None)


def kept_or_fit(
    loaded: LoadedVersion, path: str, fit: Callable[[], Calibration | None]
) -> Calibration | None:
    """Calibration ``path`` of ``loaded``: known to this loaded version, kept under
    evaluations/, or ``fit()`` now (and kept where the version has a store)."""
    if path in loaded.cache.calibrations:
        return loaded.cache.calibrations[path]
    cal = _kept(loaded, path) if loaded.store else None
    if cal is None:
        cal = fit()
        if cal is not None and loaded.store:
            _keep(loaded, path, cal)
    loaded.cache.calibrations[path] = cal
    return cal


def _file(loaded: LoadedVersion, path: str):
    return open_store(loaded.store).evaluation_file(loaded.version, f"relevance-{path}")


def _kept(loaded: LoadedVersion, path: str) -> Calibration | None:
    try:
        return Calibration.from_dict(json.loads(_file(loaded, path).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep(loaded: LoadedVersion, path: str, cal: Calibration) -> None:
    try:
        write_json_atomic({"path": path, **cal.to_dict()}, _file(loaded, path))
    except OSError as e:  # a read-only store: kept in memory only
        logger.warning("relevance calibration not kept (%s)", e.strerror or e)


def _fit(loaded: LoadedVersion, path: str) -> Calibration | None:
    val = loaded.held_out_queries().val
    if not val:
        return None
    texts, gold = [t for t, _ in val], [n for _, n in val]
    hits = rank(loaded, path, texts, min(RANKED, loaded.n_items), None, DEFAULT_BEAM).hits
    modality = [loaded.items[i]["modality"] for i in loaded.model.item_ids]
    return fit_calibration(
        [[(s, modality[row], row == g) for row, s in found] for found, g in zip(hits, gold)]
    )
