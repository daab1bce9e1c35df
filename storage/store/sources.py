"""The store's sources: the folders its items come from.

STORE/sources.json holds ``{"sources": [{"source_id", "location"}, ...]}`` (written atomically
under the store lock). A build plans a new folder's source (``plan_source``) and registers it
only once its version is LATEST (``settle_sources``): a failed run, or one killed before
LATEST moved, registers nothing. The planned sources travel in the version folder
(``.sources.json``, hidden: not a published file) until they are registered, so a run killed
after LATEST moved has them read from there and registered by the next publish or sources
command. A source is never ``/``, a special file system, the store or a folder holding it.
Every item row carries its ``source_id`` and its path relative to that source's location,
so every item is traceable to one file; each version's manifest keeps the sources it was
built from. A store without sources.json (a copy, or one written before
sources existed) takes the sources of its LATEST manifest, or has none until one is added.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ace_core.bounded_read import one_reason, read_bounded
from ace_core.errors import AceInputError
from ace_index.storage.store import DamagedStoreError, IndexStore, StoreError
from ace_index.storage.store.disk import write_durably

SOURCES_MAX_BYTES = 16 << 20


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


def check_source_location(store: IndexStore, location: str) -> None:
    """A folder that can be a source of ``store``: not ``/``, not a special file system, not
    the store, inside it, or a folder that holds it."""
    from ace_core.media.walk import special_mount

    root = str(store.root.resolve())
    if location == "/":
        raise StoreError("/ cannot be a source: give the folder that holds your media")
    special = special_mount(location)
    if special:
        raise StoreError(f"{location} is on a special file system ({special})")
    if location == root or location.startswith(root + "/"):
        raise StoreError(f"{location} is inside the store {root}: give a media folder")
    if root.startswith(location.rstrip("/") + "/"):
        raise StoreError(
            f"{location} contains the store {root}: keep the store outside the folders it "
            "indexes (--store)"
        )


def read_recorded_sources(store: IndexStore) -> list[Source]:
    """The registered sources as recorded, unchecked (a damaged sources.json is a damaged
    store, exit 3)."""
    data = _read_json(store.sources_file)
    if data is _MISSING:
        if store.latest() is not None:
            return _sources_in(store.manifest().get("sources", []), store.version().manifest)
        return []
    return _sources_in(data.get("sources") if isinstance(data, dict) else None, store.sources_file)


_MISSING = object()


def _read_json(path: Path) -> object:
    """The JSON in ``path`` (``_MISSING`` when there is no such file); a file that cannot be
    read or is not JSON is a damaged store."""
    try:
        raw = read_bounded(path, SOURCES_MAX_BYTES)
    except FileNotFoundError:
        return _MISSING
    except (OSError, AceInputError) as e:
        raise DamagedStoreError(f"cannot read {path}: {one_reason(e)}") from e
    try:
        return json.loads(raw)
    except ValueError as e:
        raise DamagedStoreError(f"{path} is not JSON ({one_reason(e)})") from e


def read_sources(store: IndexStore) -> list[Source]:
    """The registered sources, with those LATEST's publish planned and was killed before
    registering; each checked as a new one is (a hand-edited ``/`` is a damaged store, exit 3,
    never a walk of the whole file system)."""
    sources = _with_pending(store, read_recorded_sources(store))
    for s in sources:
        try:
            check_source_location(store, s.location)
        except StoreError as e:
            raise DamagedStoreError(
                f"{store.sources_file} names the source {s.source_id}, which cannot be one "
                f"({e}); `ace sources remove {s.source_id}` unregisters it"
            ) from e
    return sources


def _sources_in(rows: object, where: Path) -> list[Source]:
    """Sources from their JSON rows, checked: a list of {source_id, location} strings."""
    ok = isinstance(rows, list) and all(
        isinstance(r, dict)
        and set(r) == {"source_id", "location"}
        and all(isinstance(v, str) and v for v in r.values())
        for r in rows
    )
    if not ok:
        raise DamagedStoreError(
            f"{where} does not hold a list of sources ({{source_id, location}} strings)"
        )
    return [Source(**r) for r in rows]


def write_sources(store: IndexStore, sources: list[Source]) -> None:
    """Replace sources.json durably (call under the store lock); the sources LATEST's publish
    left to register are in it from now on."""
    store.root.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"sources": [asdict(s) for s in sources]}, indent=2) + "\n"
    write_durably(store.sources_file, text)
    pending = _pending_file(store)
    if pending is not None:
        pending.unlink(missing_ok=True)


def match_folder(sources: list[Source], location: str) -> SourceMatch | None:
    """The source that holds ``location`` (itself or a folder under it), if any."""
    for s in sources:
        if location == s.location or location.startswith(s.location.rstrip("/") + "/"):
            prefix = os.path.relpath(location, s.location)
            return SourceMatch(s, "" if prefix == "." else prefix, False)
    return None


def plan_source(store: IndexStore, folder: str | os.PathLike) -> SourceMatch:
    """The source that would hold ``folder``: the registered one that holds it, or a new
    one (``added``), checked but not written (``register_sources`` writes it)."""
    location = folder_location(folder)
    check_source_location(store, location)
    sources = read_sources(store)
    found = match_folder(sources, location)
    if found is not None:
        return found
    inside = [s.source_id for s in sources if s.location.startswith(location + "/")]
    if inside:
        raise StoreError(
            f"{location} holds the source(s) {', '.join(inside)}; remove them first "
            f"(`ace sources remove ID`) or add a folder that does not overlap"
        )
    return SourceMatch(Source(_new_source_id(sources, location), location), "", True)


def register_sources(store: IndexStore, new: list[Source]) -> None:
    """Write sources into sources.json (call under the store lock). A source id taken
    meanwhile by another folder stops the command."""
    sources = _with_pending(store, read_recorded_sources(store))
    check_planned_sources(sources, new)
    by_id = {s.source_id for s in sources}
    added = [s for s in new if s.source_id not in by_id]
    if added or not store.sources_file.exists():
        write_sources(store, [*sources, *added])


def check_planned_sources(sources: list[Source], new: list[Source]) -> None:
    """A planned source whose id now names another folder stops the publish (before LATEST
    moves)."""
    by_id = {s.source_id: s for s in sources}
    for s in new:
        if s.source_id in by_id and by_id[s.source_id] != s:
            raise StoreError(
                f"source {s.source_id} now names {by_id[s.source_id].location}, not "
                f"{s.location}; run the command again"
            )


def settle_sources(store: IndexStore) -> None:
    """Register the sources LATEST's publish planned, kept in its folder until now, and write
    sources.json for a store that has none (call under the store lock, once LATEST has
    moved)."""
    recorded = read_recorded_sources(store)
    sources = _with_pending(store, recorded)
    if sources != recorded or not store.sources_file.exists():
        write_sources(store, sources)  # the planned sources' record goes with it
        return
    pending = _pending_file(store)
    if pending is not None:
        pending.unlink(missing_ok=True)


PLANNED_SOURCES = ".sources.json"  # in a version folder; hidden: not a published file


def write_planned_sources(staged: os.PathLike, walked: list[Source]) -> None:
    """The sources a staged version's items were found in (registered once it is LATEST)."""
    path = Path(staged) / PLANNED_SOURCES
    path.write_text(json.dumps([asdict(s) for s in walked]))


def planned_sources(folder: os.PathLike) -> list[Source]:
    """The sources a version folder's build walked and has not registered (none for a
    retrain, or once registered)."""
    path = Path(folder) / PLANNED_SOURCES
    rows = _read_json(path)
    return [] if rows is _MISSING else _sources_in(rows, path)


def _pending_file(store: IndexStore) -> Path | None:
    """LATEST's planned sources (left by a publish killed before registering them)."""
    latest = store.readable_latest()
    return store.version_dir(latest) / PLANNED_SOURCES if latest else None


def _with_pending(store: IndexStore, sources: list[Source]) -> list[Source]:
    """``sources`` and, after them, LATEST's planned sources whose ids they lack."""
    pending = _pending_file(store)
    taken = {s.source_id for s in sources}
    new = [
        s for s in (planned_sources(pending.parent) if pending else []) if s.source_id not in taken
    ]
    return [*sources, *new]


def add_source(store: IndexStore, folder: str | os.PathLike) -> SourceMatch:
    """Register ``folder`` as a source now (`ace sources add`; idempotent: a folder already
    under a source is matched to it, not added)."""
    with store.lock():
        match = plan_source(store, folder)
        register_sources(store, [match.source])
    return match


def remove_source(store: IndexStore, key: str) -> Source:
    """Unregister a source by id or location. Its items leave the index at the next
    re-index (which then needs --allow-remove)."""
    with store.lock():
        sources = _with_pending(store, read_recorded_sources(store))  # unchecked: `/` goes
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


def sources_holding(store: IndexStore, source_ids: set[str]) -> list[Source]:
    """The sources (registered, or recorded by LATEST) with the given ids, for a manifest."""
    known: dict[str, Source] = {}
    if store.latest() is not None:
        known = {s["source_id"]: Source(**s) for s in store.manifest().get("sources", [])}
    known.update({s.source_id: s for s in read_sources(store)})
    return [known[i] for i in sorted(source_ids) if i in known]
