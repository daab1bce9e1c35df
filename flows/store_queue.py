"""Builds of one store queue on the Prefect API: a global concurrency limit named after the
store (one slot, created on first use) is held for the whole build, so a nightly re-index
deployment run waits for an ingest of the same store instead of failing on its build lock.

The store's build lock (a file) still guards every build, whichever API it reports to: a
command-line build beside a deployment run fails at once with "store is busy". A slot held
while that lock is free belongs to a build that was killed: the next build frees it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from ace_core.errors import AceInputError
from ace_index.storage.store import open_store

LEASE_S = 60  # renewed while the build runs; a killed build's slot frees after this, or
# at once when the next build finds the store's build lock free (nothing runs, so the slot's
# holder is gone)


def store_limit_name(store: str) -> str:
    return f"ace-build-{open_store(store).key}"


@contextmanager
def queued_behind_other_builds(store: str) -> Iterator[None]:
    """Hold the store's slot on the Prefect API for the body (waits while another build of
    the store holds it, and says so once)."""
    from prefect.context import FlowRunContext

    from ace_index.tasks._progress import stage

    if not str(store).strip():  # a deployment's `{{ prefect.variables.ace_store }}` unset
        raise AceInputError(
            "no store given: set the Prefect variable ace_store (`prefect variable set ace_store "
            "/srv/ace/store`) and run `prefect deploy --all` again, or pass the store parameter"
        )
    if FlowRunContext.get() is None:  # the flow's function called directly: no run to queue
        yield
        return
    name = store_limit_name(store)
    taken = _slots_taken(name)
    if taken and not open_store(store).build_lock_held_elsewhere():
        _release(name, taken)  # its holder is gone (killed): the slot would wait out its lease
        stage("freed the slot of a build of this store that is no longer running (%s)", name)
    elif taken:
        stage("waiting for another build of this store to finish (concurrency limit %s)", name)
    with concurrency(name, occupy=1, lease_duration=LEASE_S, strict=True):
        yield


def _release(name: str, slots: int) -> None:
    with get_client(sync_client=True) as client:
        client.release_concurrency_slots(names=[name], slots=slots, occupancy_seconds=1.0)


def _slots_taken(name: str) -> int:
    """Active slots of the store's limit, created (limit 1) when it does not exist yet."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name).active_slots
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:  # another build of the store created it just now
            pass
        return client.read_global_concurrency_limit_by_name(name).active_slots
