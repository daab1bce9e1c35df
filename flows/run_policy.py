"""How the product flows run on Prefect (issue 43): each run is named and tagged after its
store and operation, has a timeout, retries only where a retry is safe, and the build flows
report a failure through a notification block (flows/run_hooks.py).

- Name: ``<op>-<store folder>-<UTC date and time>`` (``index-store-20250601T020000Z``).
- Tags: ``ace``, ``store:<store key>`` (``Store.key``: folder name + path hash, the key of the
  store's artifacts and events) and ``op:<op>``, added when the run starts (its parameters name
  the store: a deployment's default, a `--param`, a trigger's event), so the runs of one store
  are found on the server by tag (the UI's filter, ``FlowRunFilterTags(all_=["store:KEY"])``).
- Timeouts: ``ACE_BUILD_TIMEOUT_HOURS`` (default 24; 0: none) for the builds, read when the
  flows are imported (a worker's environment); an audit gets an hour.
- Retries: the audit only (read-only); see docs/DESIGN.md "Versions, flows, crash safety".
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ace_index.flows.run_hooks import notify_failure

logger = logging.getLogger("ace.runs")

OPERATIONS = {  # flow name -> the operation its runs are named and tagged after
    "index-corpus": "index",
    "ingest-batch": "ingest",
    "train-retriever": "retrain",
    "audit-versions": "audit",
}
DEFAULT_BUILD_TIMEOUT_HOURS = 24.0
AUDIT_TIMEOUT_S = 3600.0
AUDIT_RETRIES = 2  # a read-only diff: a retry cannot change the store
AUDIT_RETRY_DELAY_S = 30


def build_timeout_s() -> float | None:
    """Seconds a build may run before Prefect fails it (TimedOut): ACE_BUILD_TIMEOUT_HOURS
    (default 24, 0 for none)."""
    raw = os.environ.get("ACE_BUILD_TIMEOUT_HOURS", "").strip()
    try:
        hours = float(raw) if raw else DEFAULT_BUILD_TIMEOUT_HOURS
    except ValueError:
        raise ValueError(f"ACE_BUILD_TIMEOUT_HOURS must be hours (a number), not {raw!r}") from None
    return hours * 3600 if hours > 0 else None


def run_options(op: str) -> dict[str, Any]:
    """The ``@flow`` settings of the flow whose runs do ``op`` (a value of OPERATIONS)."""
    options: dict[str, Any] = {"flow_run_name": run_namer(op), "on_running": [tag_run]}
    if op == "audit":
        options.update(
            timeout_seconds=AUDIT_TIMEOUT_S,
            retries=AUDIT_RETRIES,
            retry_delay_seconds=AUDIT_RETRY_DELAY_S,
        )
    else:  # builds: no flow retry (DESIGN), a notification when one fails or crashes
        options.update(
            timeout_seconds=build_timeout_s(),
            on_failure=[notify_failure],
            on_crashed=[notify_failure],
        )
    return options


def run_name(op: str, store: str, at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    folder = Path(store).resolve().name if store else "no-store"
    return f"{op}-{folder or 'root'}-{at:%Y%m%dT%H%M%SZ}"


def run_namer(op: str):
    """A ``flow_run_name`` callable: Prefect calls it without arguments in the run's context."""

    def name() -> str:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        store = (ctx.parameters or {}).get("store") if ctx else None
        return run_name(op, str(store) if store else "")

    name.__name__ = f"{op}_run_name"
    return name


def run_tags(flow_name: str, store: str | None) -> list[str]:
    from ace_index.storage.store import open_store

    tags = ["ace", f"op:{OPERATIONS.get(flow_name, flow_name)}"]
    if store:
        tags.append(f"store:{open_store(store).key}")
    return tags


def tag_run(flow, flow_run, state) -> None:
    """``on_running`` hook: adds the run's tags to those it has (a deployment's own)."""
    from prefect.client.orchestration import get_client

    wanted = run_tags(flow.name, (flow_run.parameters or {}).get("store"))
    with get_client(sync_client=True) as client:
        have = list(client.read_flow_run(flow_run.id).tags or [])
        missing = [t for t in wanted if t not in have]
        if missing:
            client.update_flow_run(flow_run.id, tags=have + missing)
            flow_run.tags = have + missing
