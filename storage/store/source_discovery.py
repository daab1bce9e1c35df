"""Discovery over the store's sources: every reachable source at once (a re-index), or one
folder inside a source (an ingest), each item path relative to its source."""

from __future__ import annotations

import os
from pathlib import Path

from ace_core.media.discovery import Discovery, discover, merge_discoveries, with_source
from ace_index.storage.store.sources import Source, SourceMatch


def discover_sources(sources: list[Source]) -> tuple[Discovery, list[Source]]:
    """One discovery over every reachable source, and the sources that were not reachable
    (their items count as vanished)."""
    parts, missing = [], []
    for s in sources:
        if not Path(s.location).is_dir():
            missing.append(s)
            continue
        parts.append(with_source(discover(s.location), s.source_id))
    return merge_discoveries(parts), missing


def discover_folder(match: SourceMatch, folder: str | os.PathLike) -> Discovery:
    """Discovery of one folder, its paths relative to the source that holds it."""
    return with_source(discover(folder), match.source.source_id, match.prefix)
