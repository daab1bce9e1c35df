"""Keyword search beside the semantic paths: BM25 (bm25s) over each item's file name (its
path split into words) and its captions, English stop words removed. Answers what semantic
search is poor at, exact names and rare words ("IMG_2041", "tenerife"); the service shows
these matches apart from the semantic results."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

import numpy as np

_WORDS = re.compile(r"[A-Za-z]+|\d+")

# Up to this many items every query word is scored over all items (exact BM25: the sizes the
# quality tables measure). Above it a word scans its whole posting list only when it is in at
# most SCAN_MAX_POSTINGS items; the words in more score just the rows the rare words and the
# other components found, so a query costs about the same at 1M items as at 100k.
EXACT_MAX_ITEMS = 100_000
SCAN_MAX_POSTINGS = 32_768

Hits = list[tuple[int, float]]
RowScorer = Callable[[np.ndarray], np.ndarray]


def item_document(path: str, captions: Sequence[str]) -> str:
    """The words of an item's file name (folders, stem and extension split at separators,
    case changes and digits) and its captions."""
    words = _WORDS.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", path))
    return " ".join([*words, *captions])


class KeywordIndex:
    """BM25 over one document per item (rows in the version's item order)."""

    def __init__(
        self,
        documents: Sequence[str],
        *,
        exact_max_items: int = EXACT_MAX_ITEMS,
        scan_max_postings: int = SCAN_MAX_POSTINGS,
    ):
        import bm25s
        from bm25s.tokenization import Tokenizer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG
        self.n = len(documents)
        self.tokenizer = Tokenizer(stopwords="en", stemmer=None)
        ids = self.tokenizer.tokenize(list(documents), return_as="ids", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(ids, show_progress=False)
        self.exact = self.n <= exact_max_items
        self.scan_max_postings = scan_max_postings
        self._postings = None  # postings sorted by row, checked on the first pruned query

    def _query(self, text: str) -> list[int]:
        words = item_document(text, [])  # split as file names were ("img_0003" -> img 0003)
        query = self.tokenizer.tokenize(
            [words], return_as="ids", update_vocab=False, show_progress=False
        )
        return list(query[0]) if query else []

    def scores(self, text: str) -> np.ndarray:
        """The BM25 score of every item (row order) for ``text``."""
        query = self._query(text)
        if not query or not self.n:
            return np.zeros(self.n, np.float32)
        return np.asarray(self.retriever.get_scores_from_ids(query), np.float32)

    def query(
        self, text: str, depth: int, allowed: np.ndarray | None = None
    ) -> tuple[Hits, RowScorer]:
        """(row, score) of the best ``depth`` rows with a positive score (among ``allowed``: a
        bool per row), and the score of any rows. Exact up to ``exact_max_items`` items;
        above, the top comes from the rows holding a rare query word (see SCAN_MAX_POSTINGS),
        scored with every query word, and the scorer is exact for the rows it is given."""
        words = self._query(text)
        if not words or not self.n:
            return [], lambda rows: np.zeros(len(rows), np.float32)
        if self.exact:
            every = np.asarray(self.retriever.get_scores_from_ids(words), np.float32)
            hit = np.flatnonzero(every > 0 if allowed is None else (every > 0) & allowed)
            return _best(hit, every[hit], depth), lambda rows: every[rows]
        scorer = lambda rows: self._row_scores(words, rows)  # noqa: E731
        hit = self._rare_word_rows(words)
        if allowed is not None:
            hit = hit[allowed[hit]]
        return _best(hit, scorer(hit), depth), scorer

    def _row_scores(self, words: list[int], rows: np.ndarray) -> np.ndarray:
        """The BM25 score of ``rows`` only: each query word's posting list (sorted by row)
        searched for them, so the cost is in the rows asked for, not in the corpus."""
        indptr, posting_rows, data = self._sorted_postings()
        rows = np.asarray(rows).astype(posting_rows.dtype)
        out = np.zeros(len(rows), np.float32)
        unique, counts = np.unique(words, return_counts=True)  # a repeated word counts again
        for word, count in zip(unique, counts):
            start, end = indptr[word], indptr[word + 1]
            if start == end:
                continue
            posting = posting_rows[start:end]
            at = np.minimum(np.searchsorted(posting, rows), end - start - 1)
            found = posting[at] == rows
            out[found] += count * data[start:end][at[found]]
        return out

    def _sorted_postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """bm25s's word -> (rows, scores) lists (indptr, rows, scores), each list sorted by
        row (sorted here once if bm25s did not)."""
        if self._postings is None:
            s = self.retriever.scores
            indptr, rows, data = s["indptr"], s["indices"], s["data"]
            word = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            same_word = word[1:] == word[:-1]
            if (np.diff(rows.astype(np.int64))[same_word] <= 0).any():
                order = np.lexsort((rows, word))
                rows, data = rows[order], data[order]
            self._postings = (indptr, rows, data)
        return self._postings

    def _rare_word_rows(self, words: list[int]) -> np.ndarray:
        """The rows holding a query word that is in at most ``scan_max_postings`` rows."""
        s = self.retriever.scores
        lists = []
        for w in set(words):
            start, end = s["indptr"][w], s["indptr"][w + 1]
            if end - start <= self.scan_max_postings:
                lists.append(s["indices"][start:end])
        return np.unique(np.concatenate(lists)).astype(np.int64) if lists else np.zeros(0, np.int64)

    def search(self, text: str, k: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the best ``k`` items with a positive score, among ``rows``."""
        return self.query(text, k, None if rows is None else row_mask(self.n, rows))[0]


def row_mask(n: int, rows: np.ndarray) -> np.ndarray:
    """A bool per row of ``n``: True at ``rows``."""
    out = np.zeros(n, bool)
    out[rows] = True
    return out


def _best(rows: np.ndarray, scores: np.ndarray, depth: int) -> Hits:
    """(row, score) of the ``depth`` best positive scores, best first."""
    keep = scores > 0
    rows, scores = rows[keep], scores[keep]
    if len(rows) > depth:
        top = np.argpartition(-scores, depth - 1)[:depth]
        rows, scores = rows[top], scores[top]
    order = np.argsort(-scores)
    return [(int(r), float(v)) for r, v in zip(rows[order], scores[order])]
