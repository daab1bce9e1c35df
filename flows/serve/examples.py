"""Query by example on the service: an indexed item (``/api/similar``) or a file the user
sends (``POST /api/search/file``), through query/by_example.py."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile

from ace_core.errors import AceInputError
from ace_core.media.modalities import MODALITY_NAMES
from ace_index.flows.serve.contract import (
    K_BOUNDS,
    SINCE_HELP,
    UNTIL_HELP,
    VERSION_BOUNDS,
    FileSearchResponse,
    SimilarResponse,
    bounds,
    errors,
)
from ace_index.flows.serve.results import query_error, with_urls
from ace_index.query.by_example import MAX_FILE_BYTES, search_by_file, similar_items
from ace_index.query.filters import DATE_PATTERN, checked_filters
from ace_index.query.request import MAX_K, QueryError

if TYPE_CHECKING:
    from ace_index.flows.serve.holder import VersionHolder

FILE_HELP = f"an image, a sound or a video clip ({MAX_FILE_BYTES >> 20} MiB at most)"
FILE_BOUNDS = bounds(minLength=1, maxLength=MAX_FILE_BYTES)
OPTIONAL_DATE_BOUNDS = bounds(pattern=f"^$|{DATE_PATTERN}")  # a form's empty field: no filter


def example_routes(app: FastAPI, holder: VersionHolder) -> None:
    _similar_route(app, holder)
    _file_route(app, holder)


def _similar_route(app: FastAPI, holder: VersionHolder) -> None:
    @app.get(
        "/api/similar/{item_id}",
        response_model=None,
        responses={200: {"model": SimilarResponse}, **errors(400, 401, 404, 422, 503)},
    )
    def similar(
        item_id: str,
        k: int = Query(10, description=f"results, 1 to {MAX_K}", **K_BOUNDS),
        version: str | None = Query(None, description="default: LATEST", **VERSION_BOUNDS),
    ):
        vm = holder.get(version)
        try:
            found = similar_items(vm, item_id, k)
        except QueryError as e:
            raise query_error(e) from None
        return {
            "item_id": item_id,
            "version": vm.version,
            "results": [with_urls(r) for r in found.results],
            "relevance_calibrated": found.calibrated,  # else the default (query/by_example.py)
            "no_good_match": found.no_good_match,
        }


def _file_route(app: FastAPI, holder: VersionHolder) -> None:
    @app.post(
        "/api/search/file",
        response_model=None,
        responses={
            200: {"model": FileSearchResponse},
            **errors(400, 401, 404, 413, 415, 422, 503),
        },
    )
    def search_file(
        file: UploadFile = File(..., description=FILE_HELP, **FILE_BOUNDS),
        k: int = Form(10, description=f"results, 1 to {MAX_K}", **K_BOUNDS),
        modality: str = Form("", pattern=f"^({'|'.join(('', *MODALITY_NAMES))})$"),
        version: str = Form("", description="default (empty): LATEST", **VERSION_BOUNDS),
        source: str = Form("", description="only items of this source"),
        since: str = Form("", description=SINCE_HELP, **OPTIONAL_DATE_BOUNDS),
        until: str = Form("", description=UNTIL_HELP, **OPTIONAL_DATE_BOUNDS),
    ):
        """Query by example with a file: embedded with the version's own encoders and
        searched through the item-memory path among the items of its space that pass the
        modality, source and date filters."""
        try:
            filters = checked_filters(source, since, until)
        except QueryError as e:
            raise query_error(e) from None
        vm, modality = holder.get(version or None), modality or None
        with tempfile.NamedTemporaryFile(prefix="ace-example-") as tmp:
            copy_bounded(file.file, tmp, MAX_FILE_BYTES)
            try:
                found = search_by_file(vm, tmp.name, k, modality, filters)
            except AceInputError as e:  # 503: the version's encoders cannot be built here
                raise query_error(e) from None
        return {
            "version": vm.version,
            "example": {"name": file.filename, "modality": found.modality},
            "results": [with_urls(r) for r in found.results],
            "relevance_calibrated": found.calibrated,
            "no_good_match": found.no_good_match,
        }


def copy_bounded(src, dst, limit: int) -> None:
    copied = 0
    while block := src.read(1 << 20):
        copied += len(block)
        if copied > limit:
            raise HTTPException(413, f"file too large (at most {limit} bytes)")
        dst.write(block)
    if not copied:
        raise HTTPException(400, "empty file")
    dst.flush()
