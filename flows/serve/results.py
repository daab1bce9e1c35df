"""How results and request errors travel over HTTP: a result with its ID tokens and media
URLs (server paths left out), a QueryError as the 4xx it names, a StoreError as 400 (a
malformed version) or 404 (one the store does not have)."""

from __future__ import annotations

from fastapi import HTTPException

from ace_core.errors import AceInputError
from ace_index.flows.serve.guard import public
from ace_index.query.request import QueryError
from ace_index.storage.store import StoreError, VersionNameError


def with_urls(result: dict) -> dict:
    """A result with its ID tokens and media URLs (the token travels as a cookie or header,
    never inside a URL that a page shows or a log keeps)."""
    tokens = [int(t) for t in result["sid"].split(".")]
    out = {k: v for k, v in result.items() if k != "location"}  # server paths stay private
    out.update(
        coarse=tokens[0],
        fine=tokens[1:-1],
        suffix=tokens[-1],
        media_url=f"/media/{result['item_id']}",
        thumb_url=f"/thumb/{result['item_id']}",
    )
    if result["modality"] != "image":  # a browser-playable rendition (/media: the original)
        out["play_url"] = f"/play/{result['item_id']}"
    return out


def query_error(e: AceInputError) -> HTTPException:
    """A QueryError as the status it names; any other input error met while searching (the
    version's text tower cannot be built on this machine) as 503."""
    return HTTPException(e.status if isinstance(e, QueryError) else 503, public(str(e)))


def store_error(e: StoreError) -> HTTPException:
    return HTTPException(400 if isinstance(e, VersionNameError) else 404, public(str(e)))
