"""A search request checked once: the query paths, the limits and the checks every entry
(the command line, the service, ``ace eval --queries``) applies before any model is loaded.
Light on purpose: the command line's parser imports it."""

from __future__ import annotations

from collections.abc import Sequence

from ace_core.errors import AceInputError
from ace_core.media.modalities import MODALITY_NAMES
from ace_index.query.rankers.registry import SERVED

# the query paths both interfaces offer: auto (the fused path) and generative (pure
# generation: the version's generative path), then the served rankers of the registry:
# fused (generated and dense candidates, weights fit per version), the generative paths
# themselves (captions: the caption-trained text encoder; zero-shot: the item encoders' text
# towers; both: the two merged by score) and dense (the caption-trained dense baseline)
PATHS = ("auto", SERVED[0], "generative", *SERVED[1:])
PATH_HELP = (
    "auto/fused: generated and dense candidates fused with the version's fitted weights; "
    "generative: pure generation (the version's generative path); captions: the "
    "caption-trained text encoder; zero-shot: the item encoders' text towers; both: the two "
    "merged by score; dense: the caption-trained dense baseline"
)
MAX_QUERY_CHARS = 2000
MAX_K = 100
DEFAULT_BEAM = 10


class QueryError(AceInputError):
    """A query that cannot be answered as asked (one line); ``status``: the HTTP status the
    service answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def checked_texts(texts: Sequence[str]) -> list[str]:
    """The queries, stripped; an empty, oversized or non-UTF-8 one is a QueryError."""
    out = []
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise QueryError("empty query: give some text to search for")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise QueryError("query is not valid UTF-8 text") from None
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(
                f"query too long ({len(text)} characters, at most {MAX_QUERY_CHARS})", 413
            )
        out.append(text.strip())
    return out


def checked_k(k: int) -> int:
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def checked_modality(modality: str | None) -> str | None:
    if modality not in (None, *MODALITY_NAMES):
        raise QueryError(f"unknown modality {modality!r} (one of {', '.join(MODALITY_NAMES)})")
    return modality


def checked_path(path: str) -> str:
    if path not in PATHS:
        raise QueryError(f"unknown query path {path!r} (one of {', '.join(PATHS)})")
    return path


def checked_request(
    texts: Sequence[str], k: int, path: str, modality: str | None
) -> tuple[list[str], int, str, str | None]:
    """Every part of a search request checked, in one place."""
    return checked_texts(texts), checked_k(k), checked_path(path), checked_modality(modality)
