"""The service's API contract as OpenAPI reads it: the bodies its JSON endpoints answer with,
the status codes each route may return and the bounds of its parameters. The models only
document (routes return plain dicts; nothing is filtered): tests/flows/test_api_contract.py
has schemathesis check every response against them. Each model allows fields beyond those
named (a later version may add some); the named ones are always there."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ace_index.query.filters import DATE_PATTERN
from ace_index.query.request import MAX_K, MAX_QUERY_CHARS


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    detail: str | list[Any]  # one line; FastAPI's 422 gives a list of field errors


class Result(Open):
    item_id: str
    path: str
    source_id: str | None
    modality: str
    sid: str
    date: str | None
    score: float
    coarse: int
    fine: list[int]
    suffix: int
    media_url: str
    thumb_url: str
    play_url: str | None = None  # sounds and videos: a rendition a browser plays
    relevance: float | None = None  # in [0, 1] where the version has a calibration
    components: dict[str, float] | None = None  # the fused path: each ranker's share
    match: str | None = None  # keyword results: "keywords"


class SearchResponse(Open):
    query: str
    version: str
    mode: str
    path: str | None
    no_good_match: bool | None
    results: list[Result]
    keyword_results: list[Result] | None = None
    relevance_calibrated: bool | None = None  # False: the default relevance (no calibration)


class Example(Open):
    name: str | None
    modality: str


class FileSearchResponse(Open):
    version: str
    example: Example
    results: list[Result]


class SimilarResponse(Open):
    item_id: str
    version: str
    results: list[Result]


class Item(Open):
    item_id: str
    source_id: str | None
    path: str
    modality: str
    status: str
    sid: str | None
    captions: list[str]
    tokens: list[int] | None = None


class VersionRow(Open):
    version: str
    parent_version: str | None
    operation: str
    created_at: str
    items: int
    failed: int
    latest: bool
    pinned: bool = False  # held by a rollback: nightly and triggered builds publish nothing


class Audit(Open):
    from_: str = Field(alias="from")
    to: str


class Evaluation(Open):
    version: str


class Health(Open):
    status: str
    version: str | None
    loading: bool
    last_error: str | None


STATUS = {
    206: "part of a file (a Range request)",
    400: "a malformed request (an empty query, k out of range, a bad version or date)",
    401: "a token is required (a service bound beyond loopback)",
    404: "no such version, item, source or file",
    410: "the indexed file changed or vanished since it was indexed",
    413: "the query or the upload is too large",
    415: "a file this index cannot read or play",
    416: "a Range outside the file",
    422: "a parameter of the wrong type or shape",
    503: "no version is loaded yet, or the encoders cannot be built here",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error codes (each an ``Error`` body)."""
    return {code: {"model": Error, "description": STATUS[code]} for code in codes}


def bounds(**schema: Any) -> dict[str, Any]:
    """A parameter's bounds in the schema only: the service checks them itself and answers
    with its own one-line 400 or 413 (FastAPI would answer 422)."""
    return {"json_schema_extra": schema}


SINCE_HELP = "only items dated on or after (an ISO date or its prefix: 2024, 2024-05)"
UNTIL_HELP = "only items dated on or before (an ISO date or its prefix: 2024-05 keeps May)"
VERSION_PATTERN = r"^(|v[0-9]{6,}|[0-9]{1,9}|LATEST|latest)$"  # empty: LATEST
Q_BOUNDS = bounds(minLength=1, maxLength=MAX_QUERY_CHARS, pattern=r"\S")
K_BOUNDS = bounds(minimum=1, maximum=MAX_K)
VERSION_BOUNDS = bounds(pattern=VERSION_PATTERN)
DATE_BOUNDS = bounds(pattern=DATE_PATTERN)
