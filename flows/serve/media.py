"""The service's media routes: /media (the original file, HTTP Range), /play (a browser-
playable rendition of a video or sound: the original when a browser plays it, else an MP4
made once and kept within a bound) and /thumb (a cached JPEG), each only for a file that
still resolves inside its source with the indexed bytes (query/served_files.py). The caches'
files are sent from the descriptor that was checked (a regular file, not a link), never
opened again by path; no error names a server path."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, Response

from ace_core.media.modalities import media_kind, thumbnail_jpeg
from ace_core.media.renditions import RenditionError, playable_as_is
from ace_index.flows.serve.contract import VERSION_BOUNDS, errors
from ace_index.flows.serve.guard import public
from ace_index.flows.serve.open_file import OpenFileResponse
from ace_index.query.rendition_cache import RenditionCache
from ace_index.query.served_files import FileGone, ServedFiles, open_cached
from ace_index.storage.store import open_store

if TYPE_CHECKING:
    from ace_index.flows.serve.holder import VersionHolder

logger = logging.getLogger(__name__)
VERSION = Query(None, description="default: LATEST", **VERSION_BOUNDS)
ORIGINAL = {"image/*": {}, "audio/*": {}, "video/*": {}}  # the indexed file as it is
PLAYABLE = {"video/*": {}, "audio/*": {}}  # the original or an MP4 rendition
THUMB = {"image/jpeg": {}}


def _sends(content: dict, *codes: int) -> dict:
    """OpenAPI ``responses`` of a route that sends a file of these media types (a part of
    it for a Range request) or one of the errors every media route has, plus ``codes``."""
    sent = {"content": content, "description": "the file"}
    part = {"content": content, "description": "part of the file (a Range request)"}
    return {200: sent, 206: part, **errors(400, 401, 404, 416, 422, 503, *codes)}


def media_routes(app: FastAPI, holder: VersionHolder, store: str, play_bytes: int) -> None:
    files = ServedFiles()
    renditions = RenditionCache(open_store(store).renditions_dir, play_bytes)
    as_is: dict[tuple, bool] = {}  # (item_id, path) -> a browser plays the original

    def indexed(item_id: str, version: str | None) -> tuple[dict, Path]:
        """The item (by id only, never a request path) and its file, checked."""
        loaded = holder.get(version)
        found = loaded.item(item_id)
        if found is None or not found.get("location"):
            raise HTTPException(404, f"item {item_id[:64]!r} is not in the served version")
        source = loaded.sources.get(found.get("source_id"))
        try:
            return found, files.path(found, source.location if source else None)
        except FileGone as e:
            raise HTTPException(410, f"item {item_id[:12]}: {e}") from None

    @app.get("/media/{item_id}", response_class=Response, responses=_sends(ORIGINAL, 410))
    def media(item_id: str, version: str | None = VERSION):
        found, path = indexed(item_id, version)
        suffix = path.suffix.lstrip(".").lower() or "octet-stream"
        kind = media_kind(found["modality"]).mime_prefix
        return FileResponse(path, media_type=kind + _subtype(suffix))  # HTTP Range

    @app.get("/play/{item_id}", response_class=Response, responses=_sends(PLAYABLE, 410, 415))
    def play(item_id: str, version: str | None = VERSION):
        found, path = indexed(item_id, version)
        if found["modality"] == "image":
            raise HTTPException(404, f"item {item_id[:12]} is an image: /media/{item_id} shows it")
        key = (item_id, str(path))
        if key not in as_is:
            if len(as_is) > 100_000:
                as_is.clear()
            as_is[key] = playable_as_is(path)
        if as_is[key]:
            return media(item_id, version)
        try:
            rendition = renditions.open(item_id, path, found["modality"])
        except RenditionError as e:
            detail = public(f"item {item_id[:12]}: no playable rendition ({e})")
            raise HTTPException(415, detail) from None
        if rendition.temporary:  # sent from its descriptor: the name can go now
            with contextlib.suppress(OSError):
                os.unlink(rendition.path)
        return OpenFileResponse(rendition.fd, media_type=rendition.mime)

    @app.get("/thumb/{item_id}", response_class=Response, responses=_sends(THUMB, 410, 415))
    def thumb(item_id: str, version: str | None = VERSION):
        found, path = indexed(item_id, version)
        cached = open_store(store).thumbnail_file(item_id)
        fd = open_cached(cached)
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                data = f.read()
        else:
            data = thumbnail_jpeg(str(path), found["modality"])
            _cache_thumbnail(cached, data)
        return Response(data, media_type="image/jpeg", headers={"cache-control": "max-age=86400"})


def _cache_thumbnail(cached: Path, data: bytes) -> None:
    """Keep a drawn thumbnail (a read-only or full store serves it uncached), written to a
    fresh temporary name (never through a link planted there) and renamed into place."""
    tmp = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cached.stem}.", suffix=".tmp", dir=cached.parent)
        os.close(fd)
        Path(tmp).write_bytes(data)
        os.replace(tmp, cached)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        logger.warning("thumbnail not cached (%s)", e.strerror or e)


def _subtype(suffix: str) -> str:
    return {
        "jpg": "jpeg",
        "tif": "tiff",
        "mp3": "mpeg",
        "mpg": "mpeg",
        "mkv": "x-matroska",
        "m4a": "mp4",
        "wav": "wav",
        "ogg": "ogg",
    }.get(suffix, suffix)
