"""Source tasks: which folders a run indexes (a new one is planned here and registered when
the run's version publishes)."""

from __future__ import annotations

from prefect import task

from ace_index.storage.store import StoreError, open_store
from ace_index.storage.store import sources as src


@task(name="resolve-sources")
def sources_to_index(store: str, corpus: str | None) -> list[src.Source]:
    """Every source of the store, with ``corpus`` planned as a new one when no source holds
    it."""
    s = open_store(store)
    sources = src.read_sources(s)
    if corpus is not None:
        match = src.plan_source(s, corpus)
        sources += [match.source] if match.added else []
    if not sources:
        hint = (
            "this store predates sources: run `ace sources add FOLDER` with the folder it was "
            "indexed from, or `ace index FOLDER`"
            if s.latest() is not None
            else "give a corpus folder: `ace index FOLDER`"
        )
        raise StoreError(f"{s.root} has no sources; {hint}")
    return sources


@task(name="plan-ingest-folder")
def plan_folder(store: str, folder: str) -> src.SourceMatch:
    """The source that holds ``folder`` (a new one, registered at publish, when none does)."""
    return src.plan_source(open_store(store), folder)
