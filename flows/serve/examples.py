"""Query by example on the service: an indexed item (``/api/similar``) or a file the user
sends (``POST /api/search/file``), through query/by_example.py."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from fastapi import FastAPI, File, Form, HTTPException, UploadFile

from ace_core.errors import AceInputError
from ace_core.media.modalities import MODALITY_NAMES
from flows.serve.guard import public
from flows.serve.results import query_error, with_urls
from query.by_example import MAX_FILE_BYTES, search_by_file, similar_items
from query.request import MAX_K, QueryError

if TYPE_CHECKING:
    from flows.serve.holder import VersionHolder


def example_routes(app: FastAPI, holder: VersionHolder) -> None:
    @app.get("/api/similar/{item_id}")
    def similar(item_id: str, k: int = 10, version: str | None = None):
        vm = holder.get(version)
        try:
            results = similar_items(vm, item_id, k)
        except QueryError as e:
            raise query_error(e) from None
        return {
            "item_id": item_id,
            "version": vm.version,
            "results": [with_urls(r) for r in results],
        }

    @app.post("/api/search/file")
    def search_file(
        file: UploadFile = File(..., description="an image, a sound or a video clip"),
        k: int = Form(10, description=f"results, 1 to {MAX_K}"),
        modality: str | None = Form(None, pattern=f"^({'|'.join(MODALITY_NAMES)})$"),
        version: str | None = Form(None, description="default: LATEST"),
    ):
        """Query by example with a file: embedded with the version's own encoders and
        searched through the item-memory path among the items of its space."""
        vm = holder.get(version)
        with tempfile.NamedTemporaryFile(prefix="ace-example-") as tmp:
            copy_bounded(file.file, tmp, MAX_FILE_BYTES)
            try:
                found = search_by_file(vm, tmp.name, k, modality)
            except QueryError as e:
                raise query_error(e) from None
            except AceInputError as e:  # the version's encoders cannot be built here
                raise HTTPException(503, public(str(e))) from None
        results = [with_urls(r) for r in found["results"]]
        return {
            "version": vm.version,
            "example": {"name": file.filename, "modality": found["modality"]},
            "results": results,
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
