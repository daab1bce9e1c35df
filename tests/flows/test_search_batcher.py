"""When the service's micro-batcher closes a batch (flows/serve/batcher.py)."""

from __future__ import annotations

import asyncio
import threading
import time

from ace_index.flows.serve.batcher import SearchBatcher


def _batch_of(batcher: SearchBatcher, arrivals: list[float]) -> tuple[int, float]:
    """The size of the next batch when queries arrive at ``arrivals`` (seconds from now),
    and how long it took to close."""

    async def scenario():
        batcher.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for at in arrivals:
            loop.call_later(at, batcher.queue.put_nowait, at)
        start = loop.time()
        batch = await batcher._next_batch(loop)
        return len(batch), loop.time() - start

    return asyncio.run(scenario())


def test_a_batch_waits_for_as_many_queries_as_the_last_one_answered():
    batcher = SearchBatcher(max_batch=32, max_wait_s=0.5, gap_s=0.01)
    batcher.expected = 4  # the previous batch answered 4 clients
    size, _ = _batch_of(batcher, [0.0, 0.05, 0.1, 0.15])  # gaps well over gap_s
    assert size == 4
    assert batcher.expected == 4


def test_a_lone_client_is_not_kept_waiting():
    batcher = SearchBatcher(max_batch=32, max_wait_s=0.5, gap_s=0.01)
    size, took = _batch_of(batcher, [0.0, 0.3])
    assert size == 1 and took < 0.2  # closed after the gap, not at max_wait


def test_a_batch_grows_while_queries_keep_coming_and_stops_at_max_batch():
    batcher = SearchBatcher(max_batch=6, max_wait_s=1.0, gap_s=0.05)
    size, _ = _batch_of(batcher, [0.01 * n for n in range(10)])
    assert size == 6
    assert batcher.expected == 6


def test_clients_that_do_not_come_back_cost_at_most_max_wait():
    batcher = SearchBatcher(max_batch=32, max_wait_s=0.1, gap_s=0.01)
    batcher.expected = 32
    size, took = _batch_of(batcher, [0.0, 0.02])
    assert size == 2 and 0.09 < took < 0.5
    assert batcher.expected == 2  # the next batch expects the two


def test_a_request_cancelled_while_its_batch_runs_does_not_stop_the_batcher(monkeypatch):
    """A client that goes away cancels its request; the others, and later ones, are answered."""
    from ace_index.flows.serve import batcher as search_batcher

    running = threading.Event()

    class Answer:
        def __init__(self, texts):
            self.texts = texts

        def payload(self, n):
            return {"query": self.texts[n], "results": []}

    def search(vm, texts, *args):
        running.set()
        time.sleep(0.2)
        return Answer(texts)

    monkeypatch.setattr(search_batcher, "search_checked", search)

    async def scenario():
        batcher = SearchBatcher(max_wait_s=0.01, gap_s=0.001)
        worker = asyncio.create_task(batcher.run())
        await asyncio.sleep(0)
        gone = asyncio.create_task(batcher.search("vm", "gone", 3, "auto"))
        stays = asyncio.create_task(batcher.search("vm", "stays", 3, "auto"))
        while not running.is_set():
            await asyncio.sleep(0.01)
        gone.cancel()
        answered = await asyncio.wait_for(stays, 5)
        later = await asyncio.wait_for(batcher.search("vm", "later", 3, "auto"), 5)
        worker.cancel()
        return answered["query"], later["query"]

    assert asyncio.run(scenario()) == ("stays", "later")
