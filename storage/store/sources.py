"""The store's sources: the folders its items come from.

STORE/sources.json holds ``{"sources": [{"source_id", "location"}, ...]}`` (written atomically
under the store lock). Every item row carries its ``source_id`` and its path relative to that
source's location, so every item is traceable to one file; each version's manifest keeps the
sources it was built from. A store without sources.json (a copy, or one written before
sources existed) takes the sources of its LATEST manifest, or has none until one is added.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ace_core.media.discovery import Discovery, discover, merge_discoveries, with_source
from storage.store import Store, StoreError


@dataclass(frozen=True)
class Source:
    source_id: str  # short name, unique in the store (from the folder name)
    location: str  # absolute folder path

    def locate(self, path: str) -> str:
        """The absolute location of an item path relative to this source."""
        return f"{self.location.rstrip('/')}/{path}"


@dataclass(frozen=True)
class SourceMatch:
    """Where a folder sits among the sources: ``source`` holds it at ``prefix`` (its path
    relative to the source's location; "" for the source itself)."""

    source: Source
    prefix: str
    added: bool  # the folder became a new source


def folder_location(folder: str | os.PathLike) -> str:
    """Absolute, normalised location of a local folder (``file://`` URIs accepted)."""
    text = str(folder)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", text):
        raise StoreError(f"only local folders can be sources here, got {text!r}")
    path = Path(text).expanduser().resolve()
    if not path.is_dir():
        raise StoreError(f"source folder not found: {path}")
    return str(path)


def read_sources(store: Store) -> list[Source]:
    if store.sources_file.exists():
        data = json.loads(store.sources_file.read_text())
        return [Source(**s) for s in data["sources"]]
    if store.latest() is not None:
        return [Source(**s) for s in store.manifest().get("sources", [])]
    return []


def write_sources(store: Store, sources: list[Source]) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = store.sources_file.with_name(f".sources.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"sources": [asdict(s) for s in sources]}, indent=2) + "\n")
    os.replace(tmp, store.sources_file)


def match_folder(sources: list[Source], location: str) -> SourceMatch | None:
    """The source that holds ``location`` (itself or a folder under it), if any."""
    for s in sources:
        if location == s.location or location.startswith(s.location.rstrip("/") + "/"):
            prefix = os.path.relpath(location, s.location)
            return SourceMatch(s, "" if prefix == "." else prefix, False)
    return None


def add_source(store: Store, folder: str | os.PathLike) -> SourceMatch:
    """Register ``folder`` as a source (idempotent: a folder already under a source is
    matched to it, not added)."""
    location = folder_location(folder)
    with store.lock():
        sources = read_sources(store)
        found = match_folder(sources, location)
        if found is not None:
            if not store.sources_file.exists():
                write_sources(store, sources)
            return found
        inside = [s.source_id for s in sources if s.location.startswith(location + "/")]
        if inside:
            raise StoreError(
                f"{location} holds the source(s) {', '.join(inside)}; remove them first "
                f"(`ace sources remove ID`) or add a folder that does not overlap"
            )
        source = Source(_new_source_id(sources, location), location)
        write_sources(store, [*sources, source])
    return SourceMatch(source, "", True)


def remove_source(store: Store, key: str) -> Source:
    """Unregister a source by id or location. Its items leave the index at the next
    re-index (which then needs --allow-remove)."""
    with store.lock():
        sources = read_sources(store)
        for s in sources:
            if key in (s.source_id, s.location):
                write_sources(store, [o for o in sources if o is not s])
                return s
    known = ", ".join(s.source_id for s in sources) or "none"
    raise StoreError(f"no source {key!r} in {store.root} (sources: {known})")


def _new_source_id(sources: list[Source], location: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(location).name).strip("-.") or "source"
    taken = {s.source_id for s in sources}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


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


def sources_holding(store: Store, source_ids: set[str]) -> list[Source]:
    """The sources (registered, or recorded by LATEST) with the given ids, for a manifest."""
    known: dict[str, Source] = {}
    if store.latest() is not None:
        known = {s["source_id"]: Source(**s) for s in store.manifest().get("sources", [])}
    known.update({s.source_id: s for s in read_sources(store)})
    return [known[i] for i in sorted(source_ids) if i in known]
