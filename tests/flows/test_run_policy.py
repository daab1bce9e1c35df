"""Prefect-native runs (issue 43): run names and tags naming the store and the operation,
timeouts, retries only where safe, and a failure notification through a configured block."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from prefect import flow
from prefect.blocks.abstract import NotificationBlock

from ace_index.flows import run_hooks, run_policy
from ace_index.storage.store import Store


class FakeNotifier(NotificationBlock):
    """A notification block that keeps what it was sent (this process only)."""

    _block_type_slug = "ace-test-notifier"
    sent: ClassVar[list[tuple[str, str | None]]] = []

    def notify(self, body: str, subject: str | None = None) -> None:
        FakeNotifier.sent.append((body, subject))


@pytest.fixture
def notifier(prefect_harness):
    from prefect.variables import Variable

    FakeNotifier().save("ace-alerts", overwrite=True)
    Variable.set(run_hooks.VARIABLE, "ace-test-notifier/ace-alerts", overwrite=True)
    FakeNotifier.sent.clear()
    yield FakeNotifier.sent
    Variable.unset(run_hooks.VARIABLE)


def _read_run(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _probe(name: str, op: str, body=None):
    def probe(store: str) -> str:
        if body:
            body()
        from prefect.runtime import flow_run

        return flow_run.id

    return flow(probe, name=name, **run_policy.run_options(op))


def test_the_product_flows_are_named_tagged_timed_and_hooked():
    from ace_index.flows.index import audit_versions, index_corpus, ingest_batch, train_retriever

    builds = (index_corpus, ingest_batch, train_retriever)
    for f in (*builds, audit_versions):
        assert callable(f.flow_run_name) and f.on_running_hooks == [run_policy.tag_run], f.name
    for f in builds:
        assert f.timeout_seconds == 24 * 3600 and f.retries == 0, f.name
        assert f.on_failure_hooks == f.on_crashed_hooks == [run_hooks.notify_failure], f.name
    assert audit_versions.retries == 2 and audit_versions.timeout_seconds == 3600
    assert audit_versions.on_failure_hooks == []  # read-only: nothing to tell


def test_build_timeout_is_configurable(monkeypatch):
    monkeypatch.setenv("ACE_BUILD_TIMEOUT_HOURS", "36")
    assert run_policy.build_timeout_s() == 36 * 3600
    monkeypatch.setenv("ACE_BUILD_TIMEOUT_HOURS", "0")
    assert run_policy.build_timeout_s() is None
    monkeypatch.setenv("ACE_BUILD_TIMEOUT_HOURS", "a day")
    with pytest.raises(ValueError, match="ACE_BUILD_TIMEOUT_HOURS"):
        run_policy.build_timeout_s()


def test_run_name_names_the_operation_the_store_folder_and_the_time(tmp_path):
    at = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
    assert run_policy.run_name("index", str(tmp_path / "photos"), at) == (
        "index-photos-20250601T020000Z"
    )


def test_a_run_is_named_and_tagged_after_its_store_and_operation(prefect_harness, tmp_path):
    store = tmp_path / "my-store"
    run_id = _probe("ingest-batch", "ingest")(str(store))
    run = _read_run(run_id)
    assert run.name.startswith("ingest-my-store-20")
    key = Store(store).key
    assert {"ace", "op:ingest", f"store:{key}"} <= set(run.tags)

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:  # the server filters runs by store
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"store:{key}"]))
        )
    assert [str(r.id) for r in found] == [run_id]


def test_a_failed_build_run_notifies_the_configured_block(notifier, tmp_path):
    def broken():
        raise OSError("disk on fire")

    state = _probe("index-corpus", "index", broken)(str(tmp_path / "s"), return_state=True)
    assert state.is_failed()
    [(body, subject)] = notifier
    assert body.startswith("ace: index-corpus run index-s-20")
    assert f"on store {tmp_path / 's'} failed: " in body and "disk on fire" in body
    assert "\n" not in body and subject == "ace: index-corpus failed"


def test_a_timed_out_build_notifies_with_its_reason(notifier, tmp_path, monkeypatch):
    monkeypatch.setenv("ACE_BUILD_TIMEOUT_HOURS", str(1 / 3600))  # one second
    state = _probe("train-retriever", "retrain", lambda: time.sleep(4))(
        str(tmp_path / "s"), return_state=True
    )
    assert state.is_failed() and state.name == "TimedOut"
    [(body, _)] = notifier
    assert "timedout: " in body and "timeout" in body.split(": ", 1)[1].lower()


def test_without_a_configured_block_the_hook_does_nothing(prefect_harness, tmp_path, caplog):
    FakeNotifier.sent.clear()
    state = _probe("ingest-batch", "ingest", lambda: 1 / 0)(str(tmp_path), return_state=True)
    assert state.is_failed() and FakeNotifier.sent == []
    assert "notification" not in caplog.text


def test_a_block_that_cannot_be_loaded_costs_a_warning_only(prefect_harness, tmp_path, caplog):
    from prefect.variables import Variable

    Variable.set(run_hooks.VARIABLE, "ace-test-notifier/missing", overwrite=True)
    try:
        state = _probe("ingest-batch", "ingest", lambda: 1 / 0)(str(tmp_path), return_state=True)
    finally:
        Variable.unset(run_hooks.VARIABLE)
    assert state.is_failed() and "ZeroDivisionError" in (state.message or "")
    assert "failure notification not sent through block ace-test-notifier/missing" in caplog.text


def test_a_deployment_run_without_a_store_fails_before_any_work(prefect_harness, tmp_path):
    """`{{ prefect.variables.ace_store }}` deployed while the Variable was unset is ""."""
    from ace_index.flows.index import ingest_batch

    state = ingest_batch(str(tmp_path), "", return_state=True)
    assert state.is_failed()
    assert "no store given: set the Prefect variable ace_store" in state.message
    assert list(tmp_path.iterdir()) == []
