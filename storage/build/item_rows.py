"""What staging adds to each row of a version's items table: its file's location (its
source's location joined with its path) and its date (ace_core/media/dates.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from ace_core.media.dates import media_date
from ace_index.storage.store import IndexStore
from ace_index.storage.store.sources import Source, sources_holding


def with_locations(items: pa.Table, store: IndexStore, walked: Sequence[Source]) -> pa.Table:
    """Items rows with ``location``: their source's location joined with their path."""
    source_ids = items["source_id"].to_pylist()
    where = {s.source_id: s for s in sources_holding(store, {i for i in source_ids if i})}
    where.update({s.source_id: s for s in walked})
    locations = [
        where[sid].locate(path) if sid in where else None
        for sid, path in zip(source_ids, items["path"].to_pylist())
    ]
    idx = items.schema.get_field_index("location")
    return items.set_column(idx, "location", pa.array(locations, pa.string()))


def with_dates(items: pa.Table) -> pa.Table:
    """Items rows with ``date`` and ``date_source`` (ace_core/media/dates.py) of ok items."""
    dates = [
        media_date(loc, modality) if status == "ok" and loc else (None, None)
        for loc, modality, status in zip(
            items["location"].to_pylist(),
            items["modality"].to_pylist(),
            items["status"].to_pylist(),
        )
    ]
    for n, name in enumerate(("date", "date_source")):
        idx = items.schema.get_field_index(name)
        items = items.set_column(idx, name, pa.array([d[n] for d in dates], pa.string()))
    return items
