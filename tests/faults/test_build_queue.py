"""Builds of one store queue on the Prefect API (a per-store global concurrency limit): a
re-index started while another build holds the store's slot waits, says so, and runs when
the slot frees."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

HOLD_BUILD_LOCK = """
import sys, time
from ace_index.storage.store import Store
with Store(sys.argv[1]).build_lock("a test build"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_reindex_waits_for_the_build_that_holds_the_stores_slot(store, caplog):
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    from ace_index.flows.index import index_corpus
    from ace_index.flows.store_queue import _slots_taken, store_limit_name

    name = store_limit_name(str(store))
    assert _slots_taken(name) == 0  # created on first use, one slot
    result: dict = {}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_BUILD_LOCK, str(store)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "holding"  # another process is building
    with caplog.at_level(logging.INFO), concurrency(name, occupy=1, strict=True):
        run = threading.Thread(target=lambda: result.update(index_corpus(store=str(store))))
        run.start()
        time.sleep(2.5)
        assert run.is_alive() and not result  # queued: no stage of the build has run
        assert not [r for r in caplog.records if "discovered" in r.getMessage()]
        holder.kill()  # that build ends (its lock with it), then its slot frees
        holder.wait()
    run.join(120)
    assert result["published"] is False and result["operation"] == "none"  # nothing changed
    said = [r.getMessage() for r in caplog.records]
    assert any("waiting for another build of this store" in m for m in said)
    assert any("discovered" in m for m in said)  # then it ran
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1
    assert _slots_taken(name) == 0  # released by the build


def test_a_failed_runs_state_message_is_its_one_line_reason(built, tmp_path):
    from ace_index.flows.index import index_corpus

    (tmp_path / "empty").mkdir()
    state = index_corpus(corpus=str(tmp_path / "empty"), store=str(tmp_path / "s"),
                         return_state=True)  # fmt: skip
    assert state.is_failed() and "\n" not in state.message
    assert state.message.endswith(f"no media files found in {tmp_path / 'empty'}")


def test_the_slot_of_a_killed_build_is_freed_by_the_next_build(store, caplog):
    """A build killed with -9 keeps its slot until its lease ends; the next build sees the
    store's build lock free (nothing runs) and frees it at once instead of waiting."""
    from prefect.client.orchestration import get_client

    from ace_index.flows.index import index_corpus
    from ace_index.flows.store_queue import _slots_taken, store_limit_name

    name = store_limit_name(str(store))
    assert _slots_taken(name) == 0
    with get_client(sync_client=True) as client:  # a holder that never releases (killed)
        client.increment_concurrency_slots_with_lease([name], 1, "concurrency", 600)
    assert _slots_taken(name) == 1
    t = time.perf_counter()
    with caplog.at_level(logging.INFO):
        result = index_corpus(store=str(store))
    assert result["published"] is False and time.perf_counter() - t < 60
    assert any("freed the slot" in r.getMessage() for r in caplog.records)
    assert _slots_taken(name) == 0
