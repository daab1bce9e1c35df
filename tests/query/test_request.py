"""A search request is checked in one place (query.request), with one error type that
carries the HTTP status the service answers with."""

import pytest

from ace_core.errors import AceInputError
from ace_core.media.modalities import KINDS, MODALITY_NAMES, SPACE_OF_MODALITY
from query.request import MAX_K, PATHS, QueryError, checked_request


@pytest.mark.parametrize(
    "texts, k, path, modality, match, status",
    [
        ([""], 5, "auto", None, "empty query", 400),
        (["   "], 5, "auto", None, "empty query", 400),
        (["x" * 5000], 5, "auto", None, "too long", 413),
        (["\ud800"], 5, "auto", None, "not valid UTF-8", 400),
        (["red"], 0, "auto", None, "k must be between 1", 400),
        (["red"], MAX_K + 1, "auto", None, "k must be between 1", 400),
        (["red"], 5, "fused?", None, "unknown query path", 400),
        (["red"], 5, "auto", "text", "unknown modality", 400),
    ],
)
def test_bad_requests_are_refused_with_their_status(texts, k, path, modality, match, status):
    with pytest.raises(QueryError, match=match) as e:
        checked_request(texts, k, path, modality)
    assert e.value.status == status and isinstance(e.value, AceInputError)


def test_a_good_request_comes_back_stripped():
    assert checked_request(["  a red circle "], 3, "dense", "audio") == (
        ["a red circle"], 3, "dense", "audio"
    )  # fmt: skip


def test_every_path_and_modality_is_offered_once():
    assert len(set(PATHS)) == len(PATHS) and PATHS[0] == "auto" and "dense" in PATHS
    assert MODALITY_NAMES == tuple(KINDS) == ("image", "audio", "video")
    assert SPACE_OF_MODALITY == {"image": "image", "audio": "audio", "video": "image"}
    for name, kind in KINDS.items():  # a kind's space is a kind that lives in itself
        assert kind.mime_prefix == f"{name}/" and KINDS[kind.space].space == kind.space
