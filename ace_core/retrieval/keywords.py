"""Keyword search beside the semantic paths: BM25 (bm25s) over each item's file name (its
path split into words) and its captions, English stop words removed. Answers what semantic
search is poor at, exact names and rare words ("IMG_2041", "tenerife"); the service shows
these matches apart from the semantic results."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

_WORDS = re.compile(r"[A-Za-z]+|\d+")


def item_document(path: str, captions: Sequence[str]) -> str:
    """The words of an item's file name (folders, stem and extension split at separators,
    case changes and digits) and its captions."""
    words = _WORDS.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", path))
    return " ".join([*words, *captions])


class KeywordIndex:
    """BM25 over one document per item (rows in the version's item order)."""

    def __init__(self, documents: Sequence[str]):
        import bm25s
        from bm25s.tokenization import Tokenizer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG
        self.n = len(documents)
        self.tokenizer = Tokenizer(stopwords="en", stemmer=None)
        ids = self.tokenizer.tokenize(list(documents), return_as="ids", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(ids, show_progress=False)

    def _query(self, text: str) -> list[int]:
        words = item_document(text, [])  # split as file names were ("img_0003" -> img 0003)
        query = self.tokenizer.tokenize([words], return_as="ids", update_vocab=False,
                                        show_progress=False)  # fmt: skip
        return list(query[0]) if query else []

    def scores(self, text: str) -> np.ndarray:
        """The BM25 score of every item (row order) for ``text``."""
        query = self._query(text)
        if not query or not self.n:
            return np.zeros(self.n, np.float32)
        return np.asarray(self.retriever.get_scores_from_ids(query), np.float32)

    def search(self, text: str, k: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the best ``k`` items with a positive score, among ``rows``."""
        query = [self._query(text)]
        if not query[0] or not self.n:
            return []
        mask = None
        if rows is not None:
            mask = np.zeros(self.n, np.float32)
            mask[rows] = 1.0
        found, scores = self.retriever.retrieve(
            query, k=min(k, self.n), show_progress=False, weight_mask=mask, n_threads=1
        )
        return [(int(r), float(s)) for r, s in zip(found[0], scores[0]) if s > 0]
