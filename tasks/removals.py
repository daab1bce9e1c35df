"""A re-index refused because files vanished (issue 43): the one-line error names them and
the exact way to allow it, and a deployment's run emits ``ace.reindex.refused`` so that an
Automation can alert someone instead of the nightly failing unseen."""

from __future__ import annotations

from prefect.events import emit_event
from prefect.runtime import deployment, flow_run

from ace_index.storage.build import staging
from ace_index.storage.store import StoreError, open_store

FILES_IN_EVENT = 20  # vanished files named in the event's payload


def refuse_removals(removals: staging.Removals, max_remove: int | None) -> None:
    """staging.check_removals with the run's store named; an event when it refuses inside a
    deployment's run (a person at a terminal reads the error)."""
    store = flow_run.parameters.get("store") if flow_run.get_id() else None
    try:
        staging.check_removals(removals, max_remove, store)
    except StoreError:
        if store and deployment_id() is not None:
            emit_refused(store, removals, max_remove)
        raise


def deployment_id() -> str | None:
    return deployment.get_id()


def emit_refused(store: str, removals: staging.Removals, max_remove: int | None) -> None:
    s = open_store(store)
    root = str(s.root.resolve())
    files = [f"{r['source_id'] or '?'}:{r['path']}" for r in removals.items]
    emit_event(
        event="ace.reindex.refused",
        resource={"prefect.resource.id": f"ace.store.{s.key}", "ace.store": root},
        payload={
            "store": root,
            "would_remove": len(files),
            "max_remove": max_remove,
            "files": files[:FILES_IN_EVENT],
            "missing_sources": list(removals.missing_sources),
            "allow": f"ace index --store {store} --max-remove {len(files)}",
        },
    )
