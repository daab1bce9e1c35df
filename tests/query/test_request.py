"""A search request is checked in one place (query.request), with one error type that
carries the HTTP status the service answers with."""

import pytest

from ace_core.errors import AceInputError
from ace_core.media.modalities import KINDS, MODALITY_NAMES, SPACE_OF_MODALITY
from ace_index.query.request import MAX_K, PATHS, QueryError, checked_request


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


@pytest.mark.parametrize(
    "date",
    ["9999-99-99", "2024-13-01", "2024-02-30", "2023-02-29", "2024-05-01T25", "２０２４", "0000"],
)
def test_a_date_filter_names_a_real_day_in_ascii_digits(date):
    from ace_index.query.filters import checked_filters

    with pytest.raises(QueryError, match="must be an ISO date") as e:
        checked_filters(since=date)
    assert e.value.status == 400
    kept = checked_filters(since="2024-02-29", until="2024-05-01T13:05")
    assert kept.keeps({"date": "2024-03-01T00:00:00"})


def test_the_schemas_date_pattern_accepts_exactly_the_dates_the_service_does():
    import re
    from datetime import date, timedelta

    from ace_index.query.filters import DATE_PATTERN, _is_date

    days = [date(1899, 12, 25) + timedelta(d) for d in range(0, 365 * 3)]
    days += [date(y, 2, 28) + timedelta(1) for y in (1900, 2000, 2023, 2024, 2100, 2400)]
    typed = [d.isoformat() for d in days] + [d.isoformat()[:7] for d in days]
    typed += ["2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "0000", "0001", "9999"]
    typed += ["2024-04-31", "2024-13", "2024-00", "2024-05-00", "2024-05-01T23:59:59"]
    typed += ["2024-05-01T24", "2024-05-01T12:60", "2024-05-01T12:30:61", "2024-5-1", "24"]
    for value in typed:
        assert bool(re.fullmatch(DATE_PATTERN, value)) == _is_date(value), value
