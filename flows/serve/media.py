"""The service's media routes: /media (the original file, HTTP Range), /play (a browser-
playable rendition of a video or sound: the original when a browser plays it, else an MP4
made once and kept within a bound) and /thumb (a cached JPEG), each only for a file that
still resolves inside its source with the indexed bytes (query/served_files.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from ace_core.media.modalities import media_kind, thumbnail_jpeg
from ace_core.media.renditions import RenditionError, playable_as_is
from query.rendition_cache import RenditionCache
from query.served_files import FileGone, ServedFiles
from storage.store import Store

if TYPE_CHECKING:
    from flows.serve.holder import VersionHolder

logger = logging.getLogger(__name__)


def media_routes(app: FastAPI, holder: VersionHolder, store: str, play_bytes: int) -> None:
    files = ServedFiles()
    renditions = RenditionCache(Store(store).renditions_dir, play_bytes)
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

    @app.get("/media/{item_id}")
    def media(item_id: str, version: str | None = None):
        found, path = indexed(item_id, version)
        suffix = path.suffix.lstrip(".").lower() or "octet-stream"
        kind = media_kind(found["modality"]).mime_prefix
        return FileResponse(path, media_type=kind + _subtype(suffix))  # HTTP Range

    @app.get("/play/{item_id}")
    def play(item_id: str, version: str | None = None):
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
            out, mime, temporary = renditions.get(item_id, path, found["modality"])
        except RenditionError as e:
            raise HTTPException(415, f"item {item_id[:12]}: no playable rendition ({e})") from None
        cleanup = BackgroundTask(os.unlink, out) if temporary else None
        return FileResponse(out, media_type=mime, background=cleanup)

    @app.get("/thumb/{item_id}")
    def thumb(item_id: str, version: str | None = None):
        found, path = indexed(item_id, version)
        cached = Store(store).thumbnail_file(item_id)
        try:
            data = cached.read_bytes()
        except OSError:
            data = thumbnail_jpeg(str(path), found["modality"])
            _cache_thumbnail(cached, data)
        return Response(data, media_type="image/jpeg", headers={"cache-control": "max-age=86400"})


def _cache_thumbnail(cached: Path, data: bytes) -> None:
    """Keep a drawn thumbnail (a read-only or full store serves it uncached)."""
    tmp = cached.with_suffix(f".tmp-{threading.get_ident()}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(cached)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
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
