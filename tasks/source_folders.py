"""Source tasks: which folders a run indexes (registering a new one)."""

from __future__ import annotations

from prefect import task

from storage.store import Store, StoreError
from storage.store import sources as src


@task(name="resolve-sources")
def sources_to_index(store: str, corpus: str | None) -> list[src.Source]:
    """Every source of the store, with ``corpus`` registered first when it is new."""
    s = Store(store)
    if corpus is not None:
        src.add_source(s, corpus)
    sources = src.read_sources(s)
    if not sources:
        hint = (
            "this store predates sources: run `ace sources add FOLDER` with the folder it was "
            "indexed from, or `ace index FOLDER`"
            if s.latest() is not None
            else "give a corpus folder: `ace index FOLDER`"
        )
        raise StoreError(f"{s.root} has no sources; {hint}")
    return sources


@task(name="register-ingest-folder")
def register_folder(store: str, folder: str) -> src.SourceMatch:
    """The source that holds ``folder`` (added as a new source when none does)."""
    return src.add_source(Store(store), folder)
