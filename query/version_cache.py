"""What a loaded version builds on first use and keeps for its lifetime: one typed cache per
version (``LoadedVersion.cache``), its slots named and typed here, filled under one lock.

``once(slot, build)`` fills a slot the first time (under that slot's own lock; a slot's
build may read another); the keyed slots (subsets, dense indexes, encoders, calibrations) are
dictionaries their owners fill under ``lock``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ace_core.retrieval.evaluation import QuerySplit
from ace_core.retrieval.keywords import KeywordIndex

T = TypeVar("T")


@dataclass
class VersionCache:
    row_of: dict[str, int] | None = None  # item_id -> row of the model's items
    text_spaces: dict | None = None  # the towers' text spaces over every item (by space)
    file_keywords: KeywordIndex | None = None  # BM25: file names and every caption
    held_out: QuerySplit | None = None  # the build's training split, validation, test
    training_keywords: KeywordIndex | None = None  # BM25: file names and training captions
    captioned: np.ndarray | None = None  # per row: had training captions
    space_of_row: np.ndarray | None = None  # per row: its item space
    subsets: dict = field(default_factory=dict)  # item subset key -> (rows, trie) or spaces
    dense_indexes: dict = field(default_factory=dict)  # (modality, filters) -> side -> index
    example_encoders: dict = field(default_factory=dict)  # media kind -> encoder
    calibrations: dict = field(default_factory=dict)  # path -> Calibration | None
    lock: threading.RLock = field(default_factory=threading.RLock)  # the keyed slots
    slot_locks: dict = field(default_factory=dict, repr=False)  # slot -> its build's lock

    def once(self, slot: str, build: Callable[[], T]) -> T:
        """Slot ``slot``, built by ``build()`` if it is still empty. A filled slot is read
        without a lock; a build holds its own slot's lock only, so a long one (BM25 at 100k
        items: seconds) does not hold up searches that read other slots."""
        value = getattr(self, slot)
        if value is not None:
            return value
        with self._slot_lock(slot):
            value = getattr(self, slot)
            if value is None:
                value = build()
                setattr(self, slot, value)
            return value

    def _slot_lock(self, slot: str) -> threading.RLock:
        with self.lock:
            return self.slot_locks.setdefault(slot, threading.RLock())
