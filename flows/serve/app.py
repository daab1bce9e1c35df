"""`ace serve`: the search service and web page over a store.

FastAPI on uvicorn: FastAPI for its request validation and the OpenAPI page at /docs (both
come from the same type hints), uvicorn because Prefect already ships it. One process holds
the served version in memory; concurrent searches are micro-batched into one beam search
(bounded wait); a watcher loads a new LATEST in the background and swaps it in atomically
(searches already queued finish on the version they started with; a failed load keeps the
old version serving and says why in /healthz).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import time
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline

from ace_core.errors import AceInputError
from ace_core.media.modalities import MODALITY_NAMES
from ace_index.flows.serve.batcher import SearchBatcher
from ace_index.flows.serve.contract import (
    DATE_BOUNDS,
    K_BOUNDS,
    Q_BOUNDS,
    SINCE_HELP,
    UNTIL_HELP,
    VERSION_BOUNDS,
    Audit,
    Evaluation,
    Health,
    Item,
    SearchResponse,
    VersionRow,
    errors,
)
from ace_index.flows.serve.examples import example_routes
from ace_index.flows.serve.guard import (
    TOKEN_COOKIE,
    BodyLimit,
    HeaderDeadlineProtocol,
    own_tempdir,
    public,
    token_ok,
)
from ace_index.flows.serve.holder import VersionHolder
from ace_index.flows.serve.media import media_routes
from ace_index.flows.serve.metrics import ServiceMetrics, route_of
from ace_index.flows.serve.results import query_error, store_error, with_urls
from ace_index.query.by_example import MAX_FILE_BYTES
from ace_index.query.filters import SORTS
from ace_index.query.rendition_cache import DEFAULT_MAX_MB
from ace_index.query.request import MAX_K, PATH_HELP, PATHS, QueryError
from ace_index.query.search import SearchRequest, completed
from ace_index.storage.build.audit import audit
from ace_index.storage.catalog.versions import list_versions, version_eval
from ace_index.storage.store import StoreError, open_store

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
AUDIT_ERRORS = errors(400, 401, 404, 422)
METRICS_RESPONSES = {
    200: {"content": {"text/plain": {}}, "description": "the Prometheus text format"},
    **errors(401),
}
FORM_OVERHEAD_BYTES = 1 << 20  # an upload's multipart headers and form fields


def create_app(
    store: str,
    *,
    token: str | None = None,
    watch_s: float = 2.0,
    max_wait_ms: float = 50.0,
    holder: VersionHolder | None = None,
    play_cache_mb: int = DEFAULT_MAX_MB,
) -> FastAPI:
    """The ASGI app over ``store`` (``holder``: a ready VersionHolder, for benchmarks)."""
    holder = holder or VersionHolder(store, watch_s)
    batcher = SearchBatcher(max_wait_s=max_wait_ms / 1000)

    async def lifespan(app):
        await asyncio.get_running_loop().run_in_executor(None, holder.start)
        task = asyncio.create_task(batcher.run())
        yield
        holder.stop()
        task.cancel()

    # the API docs at /docs and /redoc from assets served here (a CDN is not reachable offline)
    app = FastAPIOffline(title="ACE Index", lifespan=lifespan, version=_version())
    app.state.holder, app.state.batcher = holder, batcher

    _guards(app, holder, store, token)
    _search_routes(app, holder, batcher)
    _item_routes(app, holder)
    example_routes(app, holder)
    _catalog_routes(app, holder, store)
    media_routes(app, holder, store, play_cache_mb << 20)
    return app


def _search_routes(app: FastAPI, holder: VersionHolder, batcher: SearchBatcher) -> None:
    @app.get(
        "/api/search",
        response_model=None,
        responses={200: {"model": SearchResponse}, **errors(400, 401, 404, 413, 422, 503)},
    )
    async def search(
        q: str = Query(..., description="the text query", **Q_BOUNDS),
        k: int = Query(10, description=f"results, 1 to {MAX_K}", **K_BOUNDS),
        modality: str | None = Query(None, pattern=f"^({'|'.join(MODALITY_NAMES)})$"),
        version: str | None = Query(None, description="default: LATEST", **VERSION_BOUNDS),
        path: str = Query("auto", pattern=f"^({'|'.join(PATHS)})$", description=PATH_HELP),
        dense: bool = Query(False, description="the dense baseline (same as path=dense)"),
        source: str | None = Query(None, description="only items of this source"),
        since: str | None = Query(None, description=SINCE_HELP, **DATE_BOUNDS),
        until: str | None = Query(None, description=UNTIL_HELP, **DATE_BOUNDS),
        sort: str = Query("relevance", pattern=f"^({'|'.join(SORTS)})$"),
        keywords: bool = Query(False, description="also file-name and caption matches (BM25)"),
    ):
        try:
            request = SearchRequest.checked(
                q,
                k,
                path,
                modality,
                dense=dense,
                source=source,
                since=since,
                until=until,
                sort=sort,
                keywords=keywords,
            )
        except QueryError as e:
            raise query_error(e) from None
        vm = holder.get(version)
        try:
            payload = await batcher.search(
                vm, request.text, request.k, request.path, request.modality, request.filters
            )
        except AceInputError as e:  # what only the version can tell (an unknown source)
            raise query_error(e) from None
        if keywords:  # off the event loop: a version's first one builds its BM25 index
            payload = await asyncio.to_thread(completed, payload, vm, request)
        else:
            payload = completed(payload, vm, request)
        payload["results"] = [with_urls(r) for r in payload["results"]]
        if keywords:
            payload["keyword_results"] = [with_urls(r) for r in payload["keyword_results"]]
        return payload


def _guards(app: FastAPI, holder: VersionHolder, store: str, token: str | None) -> None:
    """The token check, the body limit, the metrics (and GET /metrics) and the 500 handler."""

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        allowed = token_ok(request, token)
        if token and not allowed and request.url.path not in ("/", "/healthz"):
            return JSONResponse({"detail": "a valid token is required"}, status_code=401)
        response = await call_next(request)
        if token and request.url.path == "/" and allowed:  # the page's media requests
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    app.add_middleware(BodyLimit, limit=MAX_FILE_BYTES + FORM_OVERHEAD_BYTES)
    metrics = ServiceMetrics(store)

    @app.middleware("http")
    async def measured(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        seconds = time.perf_counter() - started
        metrics.observe(route_of(request.scope), response.status_code, seconds)
        return response

    @app.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
    def prometheus():
        current = holder.current
        body, kind = metrics.render(current.version if current else None)
        return Response(body, media_type=kind)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # no stack trace in a response
        logger.exception("internal error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, 500)


def _item_routes(app: FastAPI, holder: VersionHolder) -> None:
    @app.get(
        "/api/items/{item_id}",
        response_model=None,
        responses={200: {"model": Item}, **errors(400, 401, 404, 422, 503)},
    )
    def item(item_id: str, version: str | None = Query(None, **VERSION_BOUNDS)):
        found = holder.get(version).item(item_id)
        if found is None:
            raise HTTPException(404, f"item {item_id[:64]!r} is not in the served version")
        found.pop("location", None)
        return found


def _catalog_routes(app: FastAPI, holder: VersionHolder, store: str) -> None:
    def guarded(fn, *args):
        try:
            return fn(*args)
        except StoreError as e:
            raise store_error(e) from None

    @app.get(
        "/api/versions",
        response_model=None,
        responses={200: {"model": list[VersionRow]}, **errors(401, 404)},
    )
    def versions():
        return guarded(list_versions, store)

    @app.get("/api/audit", response_model=None, responses={200: {"model": Audit}, **AUDIT_ERRORS})
    def audit_versions(
        from_: str | None = Query(None, alias="from", **VERSION_BOUNDS),
        to: str | None = Query(None, **VERSION_BOUNDS),
    ):
        return guarded(audit, store, from_, to)

    @app.get(
        "/api/eval",
        response_model=None,
        responses={200: {"model": Evaluation}, **errors(400, 401, 404, 422)},
    )
    def evaluation(version: str | None = Query(None, **VERSION_BOUNDS)):
        out = guarded(version_eval, store, version)
        out["ids"] = guarded(open_store(store).manifest, out["version"]).get("ids")
        return out

    @app.get("/healthz", response_model=None, responses={200: {"model": Health}})
    def healthz():  # open to all: no server paths (the server log has them)
        current, error = holder.current, holder.last_error
        return {
            "status": "ok" if current else "unavailable",
            "version": current.version if current else None,
            "loading": holder.loading,
            "last_error": error and public(error),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return (STATIC / "index.html").read_text()


def _version() -> str:
    from ace_core import __version__

    return __version__


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    store: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    play_cache_mb: int = DEFAULT_MAX_MB,
):
    """Run the service until interrupted (blocking)."""
    import uvicorn

    temp = own_tempdir()
    app = create_app(store, token=token, play_cache_mb=play_cache_mb)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", http=HeaderDeadlineProtocol)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
