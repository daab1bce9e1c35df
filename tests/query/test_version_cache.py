"""A loaded version's cache (query.version_cache): each slot built once however many threads
ask at the same time, and a slow build holds up only the readers of its own slot."""

import threading
import time

from ace_index.query.version_cache import VersionCache


def test_a_slot_is_built_once_by_concurrent_readers():
    cache, calls = VersionCache(), []

    def build():
        calls.append(1)
        time.sleep(0.05)
        return {"a": 0}

    seen = []

    def read():
        seen.append(cache.once("row_of", build))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(s is seen[0] for s in seen) and len(seen) == 8


def test_a_slow_build_does_not_hold_up_another_slot_or_the_keyed_slots():
    cache, started = VersionCache(), threading.Event()

    def slow():
        started.set()
        time.sleep(0.5)
        return "bm25"

    worker = threading.Thread(target=lambda: cache.once("file_keywords", slow))
    worker.start()
    started.wait(5)
    t0 = time.perf_counter()
    assert cache.once("row_of", lambda: {"x": 0}) == {"x": 0}
    with cache.lock:  # what subsets and dense indexes are filled under
        cache.subsets["k"] = 1
    assert time.perf_counter() - t0 < 0.25  # not after the slow build's 0.5 s
    worker.join()
    assert cache.file_keywords == "bm25"
