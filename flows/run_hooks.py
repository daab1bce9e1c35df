"""A failed or crashed build run tells someone (issue 43): when the Prefect Variable
``ace_failure_webhook`` names a block (``slack-webhook/ace-alerts``: block type slug / block
name), the build flows' ``on_failure`` / ``on_crashed`` hook sends it one line naming the
store, the flow, the run and the reason. A notification block (Slack, Teams, a custom
webhook, ...) gets ``notify(line, subject)``; a plain ``Webhook`` block is called with
``{"text": line, "store", "flow", "run", "state"}``. With the Variable unset or empty the hook
does nothing; a block that cannot be loaded or reached costs one warning in the run's log,
never the run's own state.

A run killed outside Python (SIGKILL, a lost machine) runs no hook: a Prefect Automation on
the ``prefect.flow-run.Crashed`` event covers that case."""

from __future__ import annotations

import inspect
import logging

VARIABLE = "ace_failure_webhook"
MAX_REASON = 400  # characters of the state's message kept in the line

logger = logging.getLogger("ace.runs")


def notify_failure(flow, flow_run, state) -> None:
    """``on_failure`` / ``on_crashed`` hook of the build flows."""
    name = configured_block()
    if not name:
        return
    line = failure_line(flow.name, flow_run, state)
    try:
        send(name, line, _fields(flow.name, flow_run, state))
    except Exception as e:  # noqa: BLE001 - a notification never changes the run's outcome
        _log(flow_run).warning("failure notification not sent through block %s: %s", name, e)
    else:
        _log(flow_run).info("failure notification sent through block %s", name)


def configured_block() -> str | None:
    from prefect.variables import Variable

    value = Variable.get(VARIABLE, default=None)
    if value is None:
        return None
    return str(value).strip() or None


def failure_line(flow_name: str, flow_run, state) -> str:
    store = (flow_run.parameters or {}).get("store") or "?"
    return (
        f"ace: {flow_name} run {flow_run.name} on store {store} {state.name.lower()}: "
        f"{_reason(state)}"
    )


def send(block_name: str, line: str, fields: dict) -> None:
    """``line`` through the block saved as ``block_name`` (``type-slug/name``)."""
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block
    from prefect.utilities.asyncutils import run_coro_as_sync

    block = Block.load(block_name)
    if isinstance(block, NotificationBlock):
        result = block.notify(line, subject=f"ace: {fields['flow']} {fields['state'].lower()}")
    elif callable(getattr(block, "call", None)):  # prefect.blocks.webhook.Webhook
        result = block.call(payload={"text": line, **fields})
    else:
        raise TypeError(
            f"{block_name} is a {type(block).__name__}, neither a notification block nor a Webhook"
        )
    if inspect.isawaitable(result):
        result = run_coro_as_sync(result)
    raise_for_status = getattr(result, "raise_for_status", None)  # a Webhook's HTTP response
    if callable(raise_for_status):
        raise_for_status()


def _reason(state) -> str:
    lines = [s.strip() for s in (state.message or "").splitlines() if s.strip()]
    reason = " ".join(lines) if lines else state.name
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


def _fields(flow_name: str, flow_run, state) -> dict:
    return {
        "store": (flow_run.parameters or {}).get("store"),
        "flow": flow_name,
        "run": flow_run.name,
        "run_id": str(flow_run.id),
        "state": state.name,
    }


def _log(flow_run):
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - no run context: the module's logger
        return logger
