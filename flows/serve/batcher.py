"""Concurrent searches of the service answered in batches: one search per version, path,
modality and filters in a batch (one batched beam search), off the event loop. Each request
was checked when it arrived (query.request.checked_request), so the batch is not checked
again.

A batch waits for as many queries as the previous batch answered (its clients tend to come
back), then for more while they keep coming (``gap_s`` apart), never longer than
``max_wait_s`` after its first query. One client waits ``gap_s``; 32 clients are not split
into a batch of the few whose requests were read first and one of the rest (a fixed 5 ms
wait did that: a third of the batches at 100k items held 1 or 2 queries)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ace_index.query.filters import Filters
from ace_index.query.loaded import NO_FILTERS, LoadedVersion
from ace_index.query.request import DEFAULT_BEAM
from ace_index.query.search import search_checked


@dataclass(frozen=True)
class Pending:
    """One query waiting in the batcher's queue, and the future its request awaits."""

    version: LoadedVersion
    text: str
    k: int
    path: str
    modality: str | None
    filters: Filters
    future: asyncio.Future

    @property
    def group(self) -> tuple:
        """What queries must share to be answered by one batched search."""
        return id(self.version), self.path, self.modality, self.filters


class SearchBatcher:
    """Concurrent searches in one batched search (at most ``max_batch``, closed as the module
    says); queries of the same version, path, modality and filters share one
    ``search_checked`` call."""

    def __init__(self, max_batch: int = 32, max_wait_s: float = 0.05, gap_s: float = 0.002):
        self.max_batch, self.max_wait_s, self.gap_s = max_batch, max_wait_s, gap_s
        self.expected = 1  # the previous batch's count: its clients tend to come back
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="ace-search")

    async def search(
        self,
        vm: LoadedVersion,
        text: str,
        k: int,
        path: str,
        modality=None,
        filters: Filters = NO_FILTERS,
    ):
        """The payload of one query (as Answer.payload gives it)."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(Pending(vm, text, k, path, modality, filters, future))
        return await future

    async def run(self) -> None:
        self.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch(loop)
            groups: dict[tuple, list[Pending]] = {}
            for entry in batch:
                groups.setdefault(entry.group, []).append(entry)
            for group in groups.values():
                await self._answer(loop, group)

    async def _next_batch(self, loop) -> list:
        """Queries until the batch is full, or holds the previous batch's count and none came
        for ``gap_s``, or ``max_wait_s`` passed since its first."""
        batch = [await self.queue.get()]
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            wait = deadline - loop.time()
            if len(batch) >= self.expected:
                wait = min(wait, self.gap_s)
            if wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), wait))
            except TimeoutError:
                break
        self.expected = len(batch)
        return batch

    async def _answer(self, loop, group: list[Pending]) -> None:
        first = group[0]
        k = max(e.k for e in group)
        texts = [e.text for e in group]
        try:
            answer = await loop.run_in_executor(
                self.executor,
                lambda: search_checked(
                    first.version,
                    texts,
                    k,
                    first.path,
                    first.modality,
                    DEFAULT_BEAM,
                    first.filters,
                ),
            )
        except Exception as e:  # noqa: BLE001 - each waiting request gets the error
            for entry in group:
                if not entry.future.done():  # done: cancelled, its client went away
                    entry.future.set_exception(e)
            return
        for n, entry in enumerate(group):
            if not entry.future.done():
                payload = answer.payload(n)
                entry.future.set_result({**payload, "results": payload["results"][: entry.k]})
